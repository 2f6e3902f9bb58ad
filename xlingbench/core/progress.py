"""Progress bars for long work, quiet when output is not a terminal or when disabled.

Set ``XLINGBENCH_PROGRESS=0`` to silence them (tests and CI logs stay readable).
"""
from __future__ import annotations

import os
import sys
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")


def enabled() -> bool:
    """Whether bars are shown: on a terminal, unless XLINGBENCH_PROGRESS=0."""
    setting = os.environ.get("XLINGBENCH_PROGRESS")
    if setting is not None:
        return setting not in ("0", "false", "no")
    return sys.stderr.isatty()


def progress(iterable: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """Wrap ``iterable`` in a tqdm bar labelled ``desc`` (a plain iterator when disabled)."""
    if not enabled():
        yield from iterable
        return
    from tqdm.auto import tqdm

    yield from tqdm(iterable, desc=desc, total=total, unit=unit, leave=False, dynamic_ncols=True)
