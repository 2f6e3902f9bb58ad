"""Evaluating a model while it trains: a transformers callback, a checkpoint-folder watcher, and
the one checkpoint evaluation both use (see docs/ARCHITECTURE.md, layer ``training``).

``XlingbenchCallback`` is imported on first use, so ``xlingbench watch`` never imports the
training side of transformers.
"""
from __future__ import annotations

from typing import Any

__all__ = ["XlingbenchCallback"]


def __getattr__(name: str) -> Any:
    if name == "XlingbenchCallback":
        from xlingbench.training.callback import XlingbenchCallback

        return XlingbenchCallback
    raise AttributeError(f"module 'xlingbench.training' has no attribute {name!r}")
