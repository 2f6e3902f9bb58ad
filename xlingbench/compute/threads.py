"""Independent torch jobs run side by side on the CPU, each on its own few threads.

Why: many of xlingbench's CPU computations are long loops of small operations (a Newton-CG fit of
task 1, a K-means start, a forward pass of a small model), too small for torch's intra-op threads
to pay: every operation waits at a barrier for every thread, and on a busy machine a descheduled
thread stalls them all (a batch of e5-small took 1.3 s on one thread and 9.6 s on two on a loaded
2-core machine, the same numbers). Jobs that share nothing need no barrier: Python threads each
running one (torch releases the GIL inside its operations) keep every core busy instead.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

S = TypeVar("S")
T = TypeVar("T")


def side_by_side(jobs: Sequence[Callable[[], T]], threads_each: int = 1, workers: int | None = None) -> list[T]:
    """The results of ``jobs``, in order, up to ``workers`` running at once (default: all of them;
    :func:`in_order`).

    >>> import torch
    >>> side_by_side([lambda: torch.get_num_threads(), lambda: 2 + 2])
    [1, 4]
    """
    at_once = len(jobs) if workers is None else workers
    return [result for _, result in in_order(jobs, lambda job: job(), at_once, threads_each)]


def in_order(items: Iterable[S], work: Callable[[S], T], workers: int, threads_each: int = 1) -> Iterator[tuple[S, T]]:
    """``(item, work(item))`` for each item, in the items' order, with up to ``workers`` computed at
    once in worker threads of ``threads_each`` torch threads each (one worker: in this thread, on
    ``threads_each`` threads too, so the numbers do not depend on how many run at once).

    At most ``workers + 1`` results wait at once, so memory stays bounded however many items; this
    thread's torch thread count is restored after (MKL's is process-wide). Closing the iterator
    early (an error while a result is used) cancels the items not started and waits for the others.

    >>> [(x, y) for x, y in in_order(range(4), lambda x: x * x, workers=2)]
    [(0, 0), (1, 1), (2, 4), (3, 9)]
    """
    import torch

    threads = torch.get_num_threads()
    if workers <= 1:
        try:
            for item in items:
                torch.set_num_threads(threads_each)
                yield item, work(item)
                torch.set_num_threads(threads)  # the caller's own work between items keeps its threads
        finally:
            torch.set_num_threads(threads)
        return

    def run(item: S) -> T:
        torch.set_num_threads(threads_each)  # this worker thread's own OpenMP setting
        return work(item)

    pool = ThreadPoolExecutor(workers, thread_name_prefix="side-by-side")
    pending: deque[tuple[S, Future[T]]] = deque()
    try:
        for item in items:
            pending.append((item, pool.submit(run, item)))
            if len(pending) > workers:
                first, result = pending.popleft()
                yield first, result.result()
        while pending:
            first, result = pending.popleft()
            yield first, result.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        torch.set_num_threads(threads)
