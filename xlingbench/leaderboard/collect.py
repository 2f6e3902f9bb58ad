"""Read MLflow runs into one tidy table: one row per task run.

Why one search: a leaderboard over hundreds of runs must not issue a query per run (over
HTTP that is hundreds of round trips). :func:`collect` issues one ``search_runs`` query over
all requested experiments, following page tokens; everything else is derived from the tags
and latest metric values that query returns. Checkpoint trajectories are built from the task
runs themselves (tags ``xlingbench.step`` and ``xlingbench.config``), not from the sink's
trajectory run, which holds one series per model whatever the configuration. Metric
*histories* (per-layer curves) are not part of a search result, so :func:`metric_histories`
fetches them on demand, only for the step metrics that declared line charts draw.

Like with like: every task run carries its configuration fingerprint (``xlingbench.config``);
:func:`default_configs` names each task's default configuration, and a rerun replaces an
earlier run only when both have the same fingerprint (:func:`newest_runs`).

The run layout read here is the one in docs/ARCHITECTURE.md ("MLflow run layout").
"""
from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from xlingbench.core.errors import UserError
from xlingbench.sinks.mlflow_sink import (DEFAULT_EXPERIMENT, MODEL_TRAINING_VIEW, TAG, WARNINGS_TAG, check_server, public_uri,
                                         resolve_tracking_uri)
from xlingbench.sinks.sqlite_store import sqlite_path
from xlingbench.sinks.store import Histories, ResultStore, TaskRow

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

PAGE_SIZE = 1000
#: the filter every search here adds: a run that is still RUNNING, or was KILLED or FAILED, holds half a result
FINISHED_ONLY = "attributes.status = 'FINISHED'"


@dataclass
class Leaderboard:
    """Everything the renderers need, read with one search."""

    tracking_uri: str  # the store's printable name: a tracking URI, or a results folder
    experiments: dict[str, str]  # experiment id -> name
    rows: list[TaskRow] = field(default_factory=list)
    #: the store's step-metric curves (ResultStore.histories); None: the MLflow store at tracking_uri
    histories: Callable[[list[tuple[str, str]]], Histories] | None = None


def connect(tracking_uri: str | None) -> tuple[MlflowClient, str]:
    """A client for an existing store; fails fast and clearly instead of creating an empty one.

    MLflow would silently create a new SQLite file for a misspelt path, and retries an
    unreachable server for minutes; both are user errors we can name in one line.
    """
    from mlflow.tracking import MlflowClient

    uri = resolve_tracking_uri(tracking_uri)
    if uri.startswith(("http://", "https://")):
        check_server(uri)
    elif uri.startswith("sqlite:"):
        _check_path(sqlite_path(uri), uri)  # the file as SQLAlchemy reads the URI (``?timeout=20`` and all)
    elif uri.startswith("file:") or "://" not in uri:
        _check_path(Path(uri.removeprefix("file://").removeprefix("file:")), uri)
    return MlflowClient(tracking_uri=uri), uri


def _check_path(path: Path, uri: str) -> None:
    """A local store must exist already: reading never creates one."""
    if not path.exists():
        raise UserError(
            f"no MLflow store at {uri} ({path} does not exist).",
            "Pass --tracking-uri (or set MLFLOW_TRACKING_URI) to the store the runs were logged to.",
        )


def experiment_ids(client: MlflowClient, names: Iterable[str]) -> dict[str, str]:
    """Map experiment names to ids, suggesting close names for a misspelt one."""
    found: dict[str, str] = {}
    for name in names:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            known = [e.name for e in client.search_experiments()]
            close = difflib.get_close_matches(name, known, n=3)
            hint = f"Did you mean {', '.join(close)}?" if close else f"Known experiments: {', '.join(known) or 'none'}."
            raise UserError(f"no MLflow experiment named {name!r}.", hint)
        found[experiment.experiment_id] = experiment.name
    return found


def search_all(client: MlflowClient, ids: list[str]) -> list[Run]:
    """One search over all experiments for the runs that finished, following page tokens (one call per 1000 runs)."""
    runs: list[Run] = []
    token: str | None = None
    while True:
        page = client.search_runs(ids, filter_string=FINISHED_ONLY, max_results=PAGE_SIZE, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """The run's page in the MLflow UI when the store is a server; empty otherwise (no UI to link to)."""
    if not tracking_uri.startswith(("http://", "https://")):
        return ""
    return f"{public_uri(tracking_uri).rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}{MODEL_TRAINING_VIEW}"


@contextmanager
def mlflow_errors(uri: str) -> Iterator[None]:
    """Turn MLflow's exceptions (bad id, not an MLflow database, server error) into one-line UserErrors."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as err:
        first_line = str(err.message).strip().splitlines()[0] if str(err.message).strip() else type(err).__name__
        raise UserError(f"MLflow at {public_uri(uri)} answered: {first_line}", "Check the run id / experiment and --tracking-uri.") from err


def board_of(store: ResultStore) -> Leaderboard:
    """The board of any store (an MLflow store or a JSON results folder): its rows and its curves."""
    return Leaderboard(tracking_uri=store.where, experiments={}, rows=store.rows(), histories=store.histories)


def collect(tracking_uri: str | None = None, experiments: Iterable[str] = ()) -> Leaderboard:
    """Read every finished task run of the named experiments (default ``xlingbench``); a run still
    RUNNING (or left so by a killed process), KILLED or FAILED is not on the board."""
    client, uri = connect(tracking_uri)
    with mlflow_errors(uri):
        ids = experiment_ids(client, list(experiments) or [DEFAULT_EXPERIMENT])
        runs = search_all(client, list(ids))
    board = Leaderboard(tracking_uri=uri, experiments=ids)
    board.rows.extend(task_row(run, uri) for run in runs if run.data.tags.get(TAG + "role") == "task")
    return board


def task_row(run: Run, tracking_uri: str) -> TaskRow:
    """Flatten one task run's tags and latest metrics into a row."""
    tags = run.data.tags
    metrics = dict(run.data.metrics)
    main_score = tags.get(TAG + "main_score", "")
    step = tags.get(TAG + "step", "")
    return TaskRow(
        model=tags.get(TAG + "model", run.info.run_name or run.info.run_id),
        model_id=tags.get(TAG + "model_id", ""),
        revision=tags.get(TAG + "revision", ""),
        family=tags.get(TAG + "family", ""),
        size=tags.get(TAG + "size", ""),
        arch=tags.get(TAG + "arch", ""),
        step=int(step) if step.lstrip("-").isdigit() else None,
        task=tags.get(TAG + "task", run.info.run_name or ""),
        main_score=main_score,
        value=metrics.get(main_score),
        higher_is_better=direction(tags.get(TAG + "higher_is_better", "true")),
        config=tags.get(TAG + "config", ""),
        warnings=warnings(tags.get(WARNINGS_TAG, "")),
        metrics=metrics,
        run_id=run.info.run_id,
        parent_run_id=tags.get("mlflow.parentRunId", ""),
        experiment_id=run.info.experiment_id,
        url=run_url(tracking_uri, run.info.experiment_id, run.info.run_id),
        start_time=run.info.start_time or 0,
        task_key=tags.get(TAG + "task_key", ""),
    )


def direction(tag: str) -> bool | None:
    """The ``xlingbench.higher_is_better`` tag: "false" lower is better, "none" descriptive, else higher."""
    return {"false": False, "none": None}.get(tag.lower(), True)


def warnings(tag: str) -> tuple[str, ...]:
    """The run's warnings from the sink's ``info.warnings`` tag (a JSON list).

    The sink cuts long tags at 500 characters, which can break the JSON: the text is then
    shown as it is rather than dropped, since a warning must never disappear silently.
    """
    if not tag:
        return ()
    try:
        value = json.loads(tag)
    except ValueError:
        return (tag,)
    return tuple(str(item) for item in value) if isinstance(value, list) else (str(value),)


def metric_histories(
    client: MlflowClient, wanted: list[tuple[str, str]], workers: int = 8
) -> dict[tuple[str, str], list[tuple[int, float]]]:
    """``(run_id, key) -> [(step, value), ...]`` sorted by step, fetched in parallel.

    Histories are one request each (MLflow has no public bulk call), so they are fetched
    only for what a detail page draws, concurrently to hide server latency.
    """

    def fetch(item: tuple[str, str]) -> list[tuple[int, float]]:
        return sorted((m.step, m.value) for m in client.get_metric_history(*item))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(zip(wanted, pool.map(fetch, wanted)))


def newest_runs(rows: Iterable[TaskRow]) -> list[TaskRow]:
    """The newest run per (model, revision, task, configuration).

    A rerun replaces an earlier run only in the same configuration: a newer run with other
    parameters is another measurement, not a correction of the first.
    """
    latest: dict[tuple[str, str, str, str], TaskRow] = {}
    for row in rows:
        key = (row.model, row.revision, row.task, row.config)
        if key not in latest or row.start_time > latest[key].start_time:
            latest[key] = row
    return list(latest.values())


def default_configs(rows: Iterable[TaskRow]) -> dict[str, str]:
    """``task -> fingerprint`` of its default configuration: the one run by the most models
    (distinct model names, so a model's many checkpoints count once), ties going to the
    configuration with the newest run. Simple on purpose: a reader can predict it."""
    models: dict[tuple[str, str], set[str]] = {}
    newest: dict[tuple[str, str], int] = {}
    for row in rows:
        key = (row.task, row.config)
        models.setdefault(key, set()).add(row.model)
        newest[key] = max(newest.get(key, 0), row.start_time)
    best: dict[str, tuple[tuple[int, int], str]] = {}
    for (task, config), names in models.items():
        rank = (len(names), newest[(task, config)])
        if task not in best or rank > best[task][0]:
            best[task] = (rank, config)
    return {task: config for task, (_, config) in best.items()}
