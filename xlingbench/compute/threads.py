"""Independent torch jobs run side by side on the CPU, each on its own few threads.

Why: many of xlingbench's CPU computations are long loops of small operations (a Newton-CG fit of
task 1, a K-means start), too small for torch's intra-op threads to pay: every operation waits at a
barrier for every thread, and on a busy machine a descheduled thread stalls them all. Jobs that
share nothing need no barrier: Python threads each running one (torch releases the GIL inside
its operations) keep every core busy instead.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

T = TypeVar("T")


def side_by_side(jobs: Sequence[Callable[[], T]], threads_each: int = 1) -> list[T]:
    """The results of ``jobs``, in order: one job alone runs in this thread; several run at once in
    worker threads, each with ``threads_each`` torch threads (this thread's count is restored after:
    MKL's is process-wide). The caller decides how many jobs there are, hence how many run at once.

    >>> side_by_side([lambda: torch.get_num_threads(), lambda: 2 + 2])
    [1, 4]
    """
    if len(jobs) <= 1:
        return [job() for job in jobs]
    threads = torch.get_num_threads()

    def run(job: Callable[[], T]) -> T:
        torch.set_num_threads(threads_each)  # this worker thread's own OpenMP setting
        return job()

    try:
        with ThreadPoolExecutor(len(jobs), thread_name_prefix="side-by-side") as pool:
            return list(pool.map(run, jobs))
    finally:
        torch.set_num_threads(threads)
