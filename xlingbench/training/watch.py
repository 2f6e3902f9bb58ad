"""``xlingbench watch``: evaluate each new checkpoint of a training run folder as it appears.

Why poll and wait: a trainer writes a checkpoint over seconds or minutes (weights, then optimizer
state, then ``trainer_state.json``). A checkpoint is evaluated only when it is complete (see
:func:`xlingbench.inputs.checkpoints.incomplete`) *and* none of its files has changed for
``settle`` seconds, so it is never read half-written and its content fingerprint (its revision)
is the final one. Every evaluation goes through the runner, so a restarted watcher skips what the
store already holds (the task key), and the results are the same runs, trajectory and board as
``xlingbench run -m RUN --checkpoints``.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from xlingbench.core.errors import UserError
from xlingbench.core.task import Outcome
from xlingbench.harness.grid import GridResult
from xlingbench.harness.runner import plan
from xlingbench.inputs.checkpoints import discover
from xlingbench.training.evaluation import Evaluation, evaluate_folder

#: a folder's state: (relative path, size, modification time) of every file in it
Signature = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class WatchSettings:
    """How often to look, how long a checkpoint's files must stay unchanged, and when to stop."""

    interval: float = 10.0
    settle: float = 5.0
    #: stop once a checkpoint of at least this step has been evaluated (None: until interrupted)
    until_step: int | None = None


def signature(folder: Path) -> Signature:
    """What changes while a checkpoint is being written: each file's name, size and mtime."""
    entries = []
    for path in sorted(folder.rglob("*")):
        try:
            stat = path.stat()
        except FileNotFoundError:  # removed while we looked (a trainer's temporary file)
            continue
        if path.is_file():
            entries.append((str(path.relative_to(folder)), stat.st_size, stat.st_mtime_ns))
    return tuple(entries)


class Watcher:
    """Remembers what each checkpoint folder looked like and since when, and which are evaluated."""

    def __init__(self, run: Path, evaluation: Evaluation, settings: WatchSettings) -> None:
        if not run.is_dir():
            raise UserError(f"{run} is not a folder.", "Pass a training run's output folder (where checkpoint-<step> folders appear).")
        self.run, self.evaluation, self.settings = run, evaluation, settings
        self.seen: dict[Path, tuple[Signature, float]] = {}
        self.done: dict[Path, Signature] = {}
        self.last_step: int | None = None

    def ready(self) -> list[Path]:
        """The complete checkpoints, in step order, unchanged for ``settle`` seconds and not yet evaluated as they are."""
        now, out = time.monotonic(), []
        for checkpoint in discover(self.run).checkpoints:
            current = signature(checkpoint.path)
            if self.done.get(checkpoint.path) == current:
                continue
            before, since = self.seen.get(checkpoint.path, (None, now))
            if before != current:
                self.seen[checkpoint.path] = (current, now)
            elif now - since >= self.settings.settle:
                out.append(checkpoint.path)
        return out

    def evaluate(self, folder: Path, report: Callable[[Outcome], None]) -> GridResult:
        """Evaluate one settled checkpoint and remember it (as it was when evaluated)."""
        state = self.seen.pop(folder)[0]
        result = evaluate_folder(folder, self.evaluation, report)
        self.done[folder] = state
        steps = [o.model.step for o in result.outcomes] + [s.step for s in result.skipped]
        self.last_step = max([s for s in steps if s is not None] + [self.last_step or -1])
        return result

    def finished(self) -> bool:
        """Whether ``until_step`` is reached."""
        until = self.settings.until_step
        return until is not None and self.last_step is not None and self.last_step >= until


def watch(run: Path, evaluation: Evaluation, settings: WatchSettings, report: Callable[[Outcome], None] = lambda o: None,
          on_result: Callable[[Path, GridResult], None] = lambda p, r: None) -> Watcher:
    """Poll ``run`` every ``interval`` seconds and evaluate each checkpoint once it has settled,
    until ``until_step`` is reached (or forever: the caller interrupts). Returns the watcher."""
    watcher = Watcher(run, evaluation, settings)
    plan(dataclasses.replace(evaluation.request(run), models=[]))  # a bad task, option or --set is refused now, not at the first checkpoint
    while True:
        for folder in watcher.ready():
            on_result(folder, watcher.evaluate(folder, report))
            if watcher.finished():
                return watcher
        time.sleep(settings.interval)
