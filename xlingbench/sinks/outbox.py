"""The outbox: every result kept on disk until its sink took it, whichever sink that is.

Why a wrapper and not the MLflow sink's own code: a plugin sink whose server refuses a result
(a tracking server that died, a database that is down) must lose it no more than MLflow does.
:class:`Outbox` wraps any sink: each result is first kept as a JSON document (never a pickle)
in ``<cache>/outbox/<hash of the sink's store>/``, then written, then dropped from the outbox.
When the sink raises one of its ``store_errors()`` (any exception for a sink that names none),
the wrapper stops trying it for the rest of the run, so the run goes on computing and keeps
every further result; the command ends with exit 4 naming the folder (:mod:`xlingbench.sinks.delivery`).
The next wrapper opened on that store sends them first. A sink that writes durable local files
itself (the JSON sink) declares ``outbox = False`` and is not wrapped.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from xlingbench.core.errors import UserError
from xlingbench.core.task import ModelRevision, Outcome, TaskMetadata
from xlingbench.sinks.delivery import DELIVERY

HOST = socket.gethostname()
#: how much of a store's error the last line quotes (an HTTP client's runs to a paragraph)
ERROR_CHARS = 160
#: what a refused write returns inside the wrapper (a sink may return None for a result it took)
_REFUSED = object()


def outbox_dir(where: str, cache_dir: Path | None = None) -> Path:
    """Where results for the store ``where`` (a tracking URI, a plugin's address) wait until it takes
    them: ``<cache>/outbox/<hash of where>`` (the run's ``--cache-dir``, else the default cache)."""
    from xlingbench.inputs.cache import default_cache_dir

    return (cache_dir or default_cache_dir()) / "outbox" / hashlib.sha256(where.encode("utf-8")).hexdigest()[:16]


def pending(folder: Path) -> list[Path]:
    """The outbox documents in ``folder``, oldest first (their names start with the time they were kept)."""
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def alive(pid: int) -> bool:
    """Whether a process with this id runs on this host (one we may not signal runs too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Outbox:
    """A sink whose results wait on disk until it took them; every other attribute is the sink's own.

    ``where`` names the sink's store (what the outbox folder is keyed by), ``shown`` how a message
    prints it (no password).
    """

    def __init__(self, sink: Any, where: str, cache_dir: Path | None = None, shown: str | None = None) -> None:
        self.sink, self.where, self.shown = sink, where, shown or where
        self.folder = outbox_dir(where, cache_dir)
        named = getattr(sink, "store_errors", None)
        self.errors: tuple[type[BaseException], ...] = named() if named is not None else (Exception,)
        #: why the store stopped taking results (None while it takes them)
        self.offline: str | None = None
        self.send()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sink, name)

    def write(self, outcome: Outcome) -> str | None:
        """Keep the outcome, hand it to the sink, drop it; what the sink returned, or None when the
        store did not take it (it then waits in the outbox)."""
        kept = self._keep(outcome)
        ref = self._deliver(outcome)
        if ref is _REFUSED:
            return None
        kept.unlink()
        return ref  # type: ignore[return-value]

    def finish_model(self, model: ModelRevision, outcomes: list[Outcome]) -> None:
        """The sink's end of a model revision, unless its store failed (it is not tried again)."""
        if self.offline is None:
            try:
                self.sink.finish_model(model, outcomes)
            except self.errors as err:
                self._stop_sending(err)

    def finished(self, keys: set[str]) -> dict[str, str]:
        """Which of ``keys`` the sink holds; nothing once its store failed (asking it again would
        fail again, and the results are kept here anyway)."""
        finished = getattr(self.sink, "finished", None)
        if finished is None or self.offline is not None:
            return {}
        try:
            return finished(keys)
        except self.errors as err:
            self._stop_sending(err)
            return {}

    def abort(self, reason: str) -> None:
        """Tell the sink the run stopped (when it listens and its store still answers)."""
        abort = getattr(self.sink, "abort", None)
        if abort is not None and self.offline is None:
            abort(reason)

    def send(self) -> None:
        """Send the results an earlier run kept for this store (oldest first; one lock, so two runs
        starting together send each once), then end each model revision. Results kept by a process
        that still runs are its own to send. A result the store already holds is dropped unsent: the
        run that kept it died after the store took it and before it dropped the document (sent
        again, it would be a second run of the same task run)."""
        from filelock import FileLock

        if not pending(self.folder):  # the common case: nothing kept, nothing written
            return
        sent: dict[tuple[str, str, int | None], list[Outcome]] = {}
        with FileLock(str(self.folder / ".lock")):
            documents = [(path, json.loads(path.read_text(encoding="utf-8"))) for path in pending(self.folder)]
            documents = [(path, document) for path, document in documents if document.get("host") == HOST
                         and (document.get("pid") == os.getpid() or not alive(int(document.get("pid", 0))))]
            held = self.finished({document["outcome"]["task_key"] for _, document in documents})
            for path, document in documents:
                outcome = outcome_of(document["outcome"])
                if outcome.task_key not in held:
                    if self._deliver(outcome) is _REFUSED:
                        break
                    DELIVERY.logged += 1
                path.unlink()
                sent.setdefault((outcome.model.name, outcome.model.revision, outcome.model.step), []).append(outcome)
        for outcomes in sent.values():
            self.finish_model(outcomes[0].model, outcomes)

    def _keep(self, outcome: Outcome) -> Path:
        """Write the outcome's JSON document to the outbox (atomically) before anything is sent."""
        from xlingbench.inputs.cache import write_atomic
        from xlingbench.sinks.json_sink import to_document

        path = self.folder / f"{time.time_ns()}-{os.getpid()}.json"
        if not (self.folder / "store.txt").exists():  # for a person reading the folder
            write_atomic(self.folder / "store.txt", self.shown + "\n")
        document = {"host": HOST, "pid": os.getpid(), "outcome": to_document(outcome)}
        write_atomic(path, json.dumps(document, ensure_ascii=False, allow_nan=False, default=str))
        return path

    def _deliver(self, outcome: Outcome) -> object:
        """What the sink returned for the outcome, or :data:`_REFUSED` when its store failed, now or
        earlier in this run (a failure stops all sending)."""
        if self.offline is None:
            try:
                return self.sink.write(outcome)
            except self.errors as err:
                self._stop_sending(err)
        DELIVERY.kept[self.folder] = (self.shown, self.offline or "")
        return _REFUSED

    def _stop_sending(self, err: BaseException) -> None:
        """Remember why the store failed; nothing more is sent to it in this run."""
        text = failure_text(err)
        self.offline = text if len(text) <= ERROR_CHARS else text[:ERROR_CHARS] + "…"


def failure_text(err: BaseException) -> str:
    """The first line of why a store failed, the root cause first where one says more: SQLAlchemy
    wraps SQLite's "database or disk is full" in an error about autoflush, which names no disk."""
    chain, seen = [err], set()
    while chain[-1] is not None and id(chain[-1]) not in seen:
        seen.add(id(chain[-1]))
        found = chain[-1]
        chain.append(getattr(found, "orig", None) or found.__cause__ or found.__context__)
    causes = [e for e in chain if e is not None]
    disk = next((e for e in reversed(causes) if getattr(e, "errno", None) == errno.ENOSPC or "disk is full" in str(e)), None)
    chosen = disk or err
    text = (str(getattr(chosen, "message", "") or chosen).strip().splitlines() or [type(chosen).__name__])[0]
    return f"the disk is full ({text})" if disk is not None else text


def outcome_of(document: dict[str, Any]) -> Outcome:
    """An outbox document back as an Outcome, with the installed task's metadata (its charts) when
    the same version is installed, else the metadata the document itself records."""
    from xlingbench.sinks.json_sink import from_document
    from xlingbench.tasks.registry import load_task

    task = document["task"]
    try:
        metadata = load_task(task["name"]).metadata
    except UserError:
        metadata = None
    if metadata is None or metadata.version != task["version"]:
        metadata = TaskMetadata(name=task["name"], description="", reference="", main_score=task["main_score"],
                                version=task["version"], higher_is_better=task["higher_is_better"])
    return from_document(document, metadata)
