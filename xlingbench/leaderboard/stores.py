"""Which store a command reads: a JSON results folder (``--results-dir``) or an MLflow store.

Why one function: ``leaderboard``, ``compare`` and ``check`` take the same two options and must
refuse the same mix-up (both given) in the same words.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from xlingbench.core.errors import UserError
from xlingbench.sinks.store import ResultStore


def open_store(tracking_uri: str | None = None, results_dir: Path | None = None, experiments: Iterable[str] = ()) -> ResultStore:
    """The results folder when ``results_dir`` is given, else the MLflow store of ``tracking_uri``
    (default ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``); nothing is created."""
    if results_dir is None:
        from xlingbench.leaderboard.mlflow_store import MlflowStore

        return MlflowStore(tracking_uri, experiments)
    if tracking_uri is not None or list(experiments):
        raise UserError("--results-dir reads a JSON results folder; --tracking-uri and --experiment name an MLflow store.",
                        "Give one store: drop --results-dir, or drop --tracking-uri/--experiment.")
    from xlingbench.sinks.json_store import JsonStore

    return JsonStore(results_dir)
