"""Progress bars for long work, quiet when output is not a terminal or when disabled.

Set ``XLINGBENCH_PROGRESS=0`` to silence them (tests and CI logs stay readable).

A bar names the model and the task it works for: the runner, which knows both, sets them with
:func:`scope` around each task; code deep inside a task (neighbours, word vectors) only names its
own step. A context variable keeps the layer rule: the runner passes the names down, core imports
nothing above it.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")

#: "model task" of the work in progress, set by :func:`scope`; "" outside a task
_SCOPE: ContextVar[str] = ContextVar("xlingbench_progress_scope", default="")


def enabled() -> bool:
    """Whether bars are shown: on a terminal, unless XLINGBENCH_PROGRESS=0."""
    setting = os.environ.get("XLINGBENCH_PROGRESS")
    if setting is not None:
        return setting not in ("0", "false", "no")
    return sys.stderr.isatty()


@contextmanager
def scope(label: str) -> Iterator[None]:
    """Prefix every bar started inside the block with ``label`` (e.g. ``"xlm-roberta-base calign"``)."""
    token = _SCOPE.set(label)
    try:
        yield
    finally:
        _SCOPE.reset(token)


def label(desc: str) -> str:
    """``desc`` prefixed with the current scope, so a bar says whose work it is."""
    current = _SCOPE.get()
    return f"{current}: {desc}" if current else desc


def progress(iterable: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """Wrap ``iterable`` in a tqdm bar labelled with the scope and ``desc`` (a plain iterator when disabled)."""
    if not enabled():
        yield from iterable
        return
    from tqdm.auto import tqdm

    yield from tqdm(iterable, desc=label(desc), total=total, unit=unit, leave=False, dynamic_ncols=True)
