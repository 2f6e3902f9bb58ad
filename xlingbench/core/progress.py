"""Progress of long work: bars on a terminal, a plain line at least every 30 seconds elsewhere.

On a terminal, tqdm bars as before. Off a terminal (a CI log, ``nohup``, output redirected to a
file) bars would be noise, yet silence for an hour is worse: a user cannot tell a hang from work.
There, while a task runs, a heartbeat thread writes one plain line to stderr every
``XLINGBENCH_PROGRESS_INTERVAL`` seconds (default :data:`INTERVAL`) naming the model and task, the
step in progress, how far it is (done of total) and the time elapsed::

    progress multilingual-e5-small calign: word vectors de 12/40 batch, 95s elapsed (task 130s)

A phase shorter than the interval prints nothing. ``XLINGBENCH_PROGRESS=0`` silences both forms
(tests), ``=1`` forces bars, ``=lines`` forces lines.

A bar names the model and the task it works for: the runner, which knows both, sets them with
:func:`scope` around each task; code deep inside a task (neighbours, word vectors) only names its
own step. A context variable keeps the layer rule: the runner passes the names down, core imports
nothing above it.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")

#: seconds between two progress lines off a terminal, unless XLINGBENCH_PROGRESS_INTERVAL says otherwise
INTERVAL = 30.0

#: "model task" of the work in progress, set by :func:`scope`; "" outside a task
_SCOPE: ContextVar[str] = ContextVar("xlingbench_progress_scope", default="")


def mode() -> str:
    """``bars`` (a terminal, or XLINGBENCH_PROGRESS=1), ``lines`` (off a terminal) or ``off`` (=0)."""
    setting = os.environ.get("XLINGBENCH_PROGRESS", "").strip().lower()
    if setting in ("0", "false", "no", "off"):
        return "off"
    if setting == "lines":
        return "lines"
    return "bars" if setting in ("1", "true", "yes") or sys.stderr.isatty() else "lines"


def enabled() -> bool:
    """Whether bars are shown: on a terminal, unless XLINGBENCH_PROGRESS=0."""
    return mode() == "bars"


def interval() -> float:
    """Seconds between progress lines: XLINGBENCH_PROGRESS_INTERVAL when it is a positive number, else :data:`INTERVAL`."""
    try:
        seconds = float(os.environ.get("XLINGBENCH_PROGRESS_INTERVAL", INTERVAL))
    except ValueError:
        return INTERVAL
    return seconds if seconds > 0 else INTERVAL


@contextmanager
def scope(label: str) -> Iterator[None]:
    """Prefix every bar started inside the block with ``label`` (e.g. ``"xlm-roberta-base calign"``);
    off a terminal, report the block's progress as lines while it runs."""
    token = _SCOPE.set(label)
    try:
        with _tracked(label, "running", None, ""):
            yield
    finally:
        _SCOPE.reset(token)


def label(desc: str) -> str:
    """``desc`` prefixed with the current scope, so a bar says whose work it is."""
    current = _SCOPE.get()
    return f"{current}: {desc}" if current else desc


def progress(iterable: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """Wrap ``iterable`` in a tqdm bar labelled with the scope and ``desc``; off a terminal, count
    its items for the progress lines; a plain iterator when progress is off."""
    shown = mode()
    if shown == "lines":
        with _tracked(_SCOPE.get(), desc, total, unit) as step:
            for item in iterable:
                yield item
                step.done += 1
        return
    if shown == "off":
        yield from iterable
        return
    from tqdm.auto import tqdm

    yield from tqdm(iterable, desc=label(desc), total=total, unit=unit, leave=False, dynamic_ncols=True)


# ---------------------------------------------------------------- lines off a terminal


@dataclass(eq=False)
class _Step:
    """One piece of work in progress: whose (scope), what (desc), how far (done of total), since when."""

    scope: str
    desc: str
    total: int | None
    unit: str
    started: float = field(default_factory=time.monotonic)
    done: int = 0

    def line(self, task_started: float, now: float) -> str:
        """The progress line for this step: scope, step, done of total, elapsed."""
        where = f"{self.scope}: {self.desc}" if self.scope else self.desc
        count = f" {self.done}/{self.total} {self.unit}" if self.total is not None else ""
        step, task = f"{now - self.started:.0f}", f"{now - task_started:.0f}"
        return f"progress {where}{count}, {step}s elapsed" + (f" (task {task}s)" if task != step else "")


class _Heartbeat:
    """The steps in progress (innermost last) and the thread that reports the innermost one.

    One line at least every interval while any step runs: the clock starts with the first step
    and restarts at each line, so a run of short steps is reported as surely as one long step."""

    def __init__(self) -> None:
        self.steps: list[_Step] = []
        self.lock = threading.Lock()
        self.wake = threading.Condition(self.lock)
        self.beating = False  # a thread reports (set and cleared under the lock, so no step is left unreported)
        self.last = 0.0

    def push(self, step: _Step) -> None:
        with self.lock:
            if not self.steps:
                self.last = step.started
            self.steps.append(step)
            if not self.beating:
                self.beating = True
                threading.Thread(target=self._beat, name="xlingbench-progress", daemon=True).start()

    def pop(self, step: _Step) -> None:
        with self.lock:
            self.steps.remove(step)
            self.wake.notify_all()

    def _beat(self) -> None:
        """Sleep until a line is due (or a step ends); write the innermost step's line; end when no step is left."""
        with self.lock:
            while self.steps:
                every = interval()
                due = self.last + every - time.monotonic()
                if due > 0:
                    self.wake.wait(timeout=due)
                    continue
                now = time.monotonic()
                _write(self.steps[-1].line(self.steps[0].started, now))
                self.last = now
            self.beating = False


_HEARTBEAT = _Heartbeat()


@contextmanager
def _tracked(scope_label: str, desc: str, total: int | None, unit: str) -> Iterator[_Step]:
    """Report the block as a step in progress when progress is shown as lines."""
    step = _Step(scope_label, desc, total, unit)
    if mode() != "lines":
        yield step
        return
    _HEARTBEAT.push(step)
    try:
        yield step
    finally:
        _HEARTBEAT.pop(step)


def _write(line: str) -> None:
    """One line to stderr, flushed at once (a CI log shows it now, not at exit)."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):  # stderr closed or gone (a daemonised run): progress is not worth a crash
        pass
