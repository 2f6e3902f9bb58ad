"""What every store of results answers, whichever sink wrote it: the :class:`ResultStore` protocol.

Why: the leaderboard, ``compare``, ``check`` and a rerun's skip knew only MLflow, so a JSON
results folder (the natural thing to review in a pull request) could not be turned into a board
or gated. They now speak this protocol, implemented by the MLflow store
(:class:`xlingbench.leaderboard.mlflow_store.MlflowStore`) and by a JSON results folder
(:class:`xlingbench.sinks.json_store.JsonStore`); a board built from either, holding the same
runs, is the same board. The metric names a row holds are those of the run layout
(:func:`flat_metrics`), shared by the MLflow sink that writes them and every reader.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from xlingbench.core.errors import UserError
from xlingbench.core.task import TaskResult, short_revision

_INVALID = re.compile(r"[^\w\-. /:]")
#: ``(run id, metric) -> [(step, value), ...]``: the per-layer curves a detail page draws
Histories = dict[tuple[str, str], list[tuple[int, float]]]


@dataclass(frozen=True)
class TaskRow:
    """One task run of one model revision: the unit every leaderboard cell and every gated line is built from."""

    model: str
    model_id: str
    revision: str
    family: str
    size: str
    arch: str
    step: int | None
    task: str
    main_score: str
    value: float | None
    higher_is_better: bool | None  # None: a descriptive headline, no better or worse
    config: str  # configuration fingerprint; runs compare only when it is equal
    warnings: tuple[str, ...]
    metrics: dict[str, float]
    run_id: str  # an MLflow run id, or a result file's path relative to its folder
    parent_run_id: str
    experiment_id: str
    url: str
    start_time: int  # milliseconds since the epoch
    task_key: str = ""  # what a rerun skips by (xlingbench.core.identity.task_key)

    def interval(self) -> tuple[float, float] | None:
        """The headline's (low, high) where the run logged ``<main_score>_ci_low`` / ``_ci_high``."""
        low, high = self.metrics.get(f"{self.main_score}_ci_low"), self.metrics.get(f"{self.main_score}_ci_high")
        return None if low is None or high is None else (low, high)


class ResultStore(Protocol):
    """A store of finished task runs, read by the board, the gate, the CLI and a rerun's skip.

    ``where`` says which store it is, fit to print. ``rows()``: every finished task run.
    ``resolve(ref)``: ``task -> row`` of one model revision named by a run reference (each store
    documents its forms; ``@FILE`` of ``xlingbench run --json`` works for both). ``finished(keys)``:
    which task keys it holds, mapped to where. ``histories(wanted)``: step-metric curves.
    """

    where: str

    def rows(self) -> list[TaskRow]: ...
    def resolve(self, ref: str) -> dict[str, TaskRow]: ...
    def finished(self, keys: set[str]) -> dict[str, str]: ...
    def histories(self, wanted: list[tuple[str, str]]) -> Histories: ...


def metric_key(name: str) -> str:
    """``name`` with characters MLflow refuses in keys replaced by ``_`` (every store uses MLflow's names)."""
    return _INVALID.sub("_", name)


def flat_metrics(result: TaskResult) -> dict[str, float]:
    """The metrics of one task run under their stored names: the metrics, each interval as
    ``<metric>_ci_low`` / ``_ci_high``, each phase timing as ``time_<phase>_s``."""
    metrics = {metric_key(k): float(v) for k, v in result.metrics.items()}
    for name, (low, high) in result.intervals.items():
        metrics[metric_key(f"{name}_ci_low")] = float(low)
        metrics[metric_key(f"{name}_ci_high")] = float(high)
    for phase, seconds in result.timings.items():
        metrics[metric_key(f"time_{phase}_s")] = float(seconds)
    return metrics


def latest_values(result: TaskResult) -> dict[str, float]:
    """Each step metric's value at its last step (what an MLflow search reports as the metric's value),
    under the stored names (a series at steps above 0 outranks a flat metric of its name, as in MLflow)."""
    return {metric_key(name): float(max(series)[1]) for name, series in result.step_metrics.items() if series}


def refs_of(path: Path, sink: str) -> list[str]:
    """What the ``sink`` wrote for each outcome of a ``xlingbench run --json`` document
    (``{"outcomes": [{"refs": {"mlflow": RUN_ID, "json": PATH}}]}``): the exact runs a CI job gates."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise UserError(f"cannot read {path}: {err.strerror}.", "Write it with `xlingbench run --json > FILE`, then pass --run @FILE.") from err
    except ValueError as err:
        raise UserError(f"{path} is not JSON: {err}.", "Pass the stdout of `xlingbench run --json` (its progress goes to stderr).") from err
    outcomes = data.get("outcomes") if isinstance(data, dict) else None
    if not isinstance(outcomes, list) or not all(isinstance(o, dict) for o in outcomes):
        raise UserError(f"{path} is not a `xlingbench run --json` document.", 'It must hold {"outcomes": [{"refs": {...}}, ...]}.')
    refs = [(o.get("refs") or {}).get(sink) or (o.get("run_id") if sink == "mlflow" else None) for o in outcomes]
    if not refs or not all(isinstance(r, str) and r for r in refs):
        what = {"mlflow": "MLflow run", "json": "result file"}.get(sink, f"{sink} result")
        raise UserError(f"{path} names no {what} for {'some' if refs else 'any'} outcome.",
                        f"Gate a run made with the {sink} sink (--sink {sink}), so that each outcome names its result.")
    return refs


def one_revision(rows: list[TaskRow], where: str) -> dict[str, TaskRow]:
    """``task -> row`` of ``rows``, the newest run of a task winning; a UserError when they span model revisions."""
    revisions = sorted({f"{row.model}@{short_revision(row.revision)}" for row in rows})
    if len(revisions) > 1:
        raise UserError(f"{where} holds runs of {len(revisions)} model revisions ({', '.join(revisions)}).",
                        "Gate one model revision at a time: run one --model and --revision per `xlingbench run --json`.")
    return {row.task: row for row in sorted(rows, key=lambda row: row.start_time)}
