"""Sinks: where finished results go (MLflow, JSON files, a plugin's store).

A sink receives typed :class:`~xlingbench.core.task.Outcome` records and nothing else, so the
runner never knows where results end up, and a new store (Weights & Biases, a database) is a
class named under the ``xlingbench.sinks`` entry point group, with no change to xlingbench:

    [project.entry-points."xlingbench.sinks"]
    mystore = "mypackage.sink:MyStoreSink"

The entry point is called with a :class:`SinkSettings` and returns an object with ``write`` and
``finish_model`` (the :class:`Sink` protocol). ``write`` returns what it wrote (a run id, a
path), kept in ``Outcome.refs[<sink name>]``. A sink that also answers ``finished(keys)`` lets a
rerun skip the task runs it already holds (the runner's resume); one without it is always written.
"""
from __future__ import annotations

from typing import Protocol

from xlingbench.core.plugins import load_plugin, plugin_names
from xlingbench.core.task import ModelRevision, Outcome
from xlingbench.sinks.settings import SinkSettings

SINK_GROUP = "xlingbench.sinks"
#: where results go when nobody says: the MLflow store
DEFAULT_SINKS = ("mlflow",)


class Sink(Protocol):
    """Receives each finished task result, then the end of each model revision.

    ``finished(keys)`` says which of these task keys (``Outcome.task_key``, see
    :func:`xlingbench.core.identity.task_key`) already have a complete result here, mapped to
    what :meth:`write` returned for it; the runner skips a task run every sink holds.
    """

    def write(self, outcome: Outcome) -> str | None: ...
    def finish_model(self, model: ModelRevision, outcomes: list[Outcome]) -> None: ...
    def finished(self, keys: set[str]) -> dict[str, str]: ...


def sink_names() -> list[str]:
    """Names of every installed sink, without importing them."""
    return plugin_names(SINK_GROUP)


def open_sinks(names: list[str], settings: SinkSettings) -> dict[str, Sink]:
    """The named sinks, opened (a tracking server is checked here, before any model loads); every
    name is checked before any sink opens."""
    fix = f"Installed sinks: {', '.join(sink_names())}."
    factories = {name: load_plugin(SINK_GROUP, name, "sink", fix) for name in dict.fromkeys(names)}
    return {name: with_outbox(name, factory(settings), settings) for name, factory in factories.items()}


def with_outbox(name: str, sink: Sink, settings: SinkSettings) -> Sink:
    """``sink`` wrapped in the outbox (:mod:`xlingbench.sinks.outbox`), keyed by its store (its
    ``where``, else its name), unless it declares ``outbox = False`` (its own files are durable)."""
    if not getattr(sink, "outbox", True):
        return sink
    from xlingbench.sinks.outbox import Outbox

    return Outbox(sink, getattr(sink, "where", name), settings.cache_dir, getattr(sink, "shown", None))
