"""A Ray worker SIGKILLed in the middle of a unit: the unit is retried and the grid completes (issue 18).

The grid of tests/test_grid.py (12 task runs in 6 units) on its 2-CPU local cluster. A watcher
thread finds a worker process of this test's own cluster while it executes a unit (Ray titles it
``ray::run_in_worker`` then, ``ray::IDLE`` otherwise) and kills it with SIGKILL; the driver must
retry that unit on another worker and end with exit 0 and exactly one finished task run per key.
"""
from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from tests.test_grid import TASK_RUNS, _finished, _run, cluster, grid  # noqa: F401  (module fixtures)

#: the process title Ray gives a worker while it runs xlingbench's unit function
RUNNING_UNIT = b"ray::run_in_worker"


def _parent(pid: int) -> int:
    """The parent process id of ``pid`` (0 when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def _descends_from(pid: int, ancestor: int) -> bool:
    """Whether ``ancestor`` is among ``pid``'s ancestors: only this test's own Ray workers are killed."""
    while pid > 1:
        pid = _parent(pid)
        if pid == ancestor:
            return True
    return False


def _running_unit_workers() -> list[int]:
    """Workers of this process's Ray cluster that are executing a unit now."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if title.startswith(RUNNING_UNIT) and _descends_from(int(entry.name), os.getpid()):
            found.append(int(entry.name))
    return found


class Killer(threading.Thread):
    """Kills the first worker seen running a unit, once, after ``delay`` seconds inside it."""

    def __init__(self, delay: float) -> None:
        super().__init__(daemon=True)
        self.delay, self.stop, self.killed = delay, threading.Event(), None

    def run(self) -> None:
        while not self.stop.is_set():
            workers = _running_unit_workers()
            if workers:
                self.stop.wait(self.delay)  # into the unit: its model is loading or its tasks running
                if workers[0] in _running_unit_workers():
                    os.kill(workers[0], signal.SIGKILL)
                    self.killed = workers[0]
                    return
            self.stop.wait(0.05)


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc to find the worker")
def test_a_worker_killed_mid_unit_is_retried_and_the_grid_completes(grid, cluster, tmp_path):
    killer = Killer(delay=0.5)
    killer.start()
    try:
        status, document, output = _run(grid, tmp_path, "--executor", "ray")
    finally:
        killer.stop.set()
        killer.join(timeout=10)
    assert killer.killed is not None, "no worker was seen running a unit"
    assert status == 0, output
    assert not document["failed"] and len(document["outcomes"]) == TASK_RUNS
    finished = _finished(tmp_path)
    assert len(finished) == TASK_RUNS and all(len(runs) == 1 for runs in finished.values())  # one result per task key
    assert {o["task_key"] for o in document["outcomes"]} == set(finished)
