"""xlingbench: how does a multilingual language model organise languages? Five tasks, one call.

``xlingbench.evaluate(models=[...], tasks=[...], sinks=[...])`` returns typed results (see
:mod:`xlingbench.harness.api`); the ``xlingbench`` command runs the same plan and logs to MLflow.
Importing this package imports no torch, transformers or mlflow.
"""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("xlingbench")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__", "evaluate"]


def __getattr__(name: str) -> object:
    """``xlingbench.evaluate`` is imported on first use, so ``import xlingbench`` stays instant."""
    if name == "evaluate":
        from xlingbench.harness.api import evaluate

        return evaluate
    raise AttributeError(f"module 'xlingbench' has no attribute {name!r}")
