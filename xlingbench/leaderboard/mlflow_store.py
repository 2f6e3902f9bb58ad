"""The MLflow store as a :class:`~xlingbench.sinks.store.ResultStore`: the board's rows, run
references, finished task keys and metric histories, all read from MLflow.

Why apart from the gate: the gate's rule (:mod:`xlingbench.leaderboard.gating`) judges rows
from any store; how a run reference is found in MLflow (a run id, a unique prefix, ``@FILE``
of ``run --json``, a tag selector; see the gate's docstring) is this store's business.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from xlingbench.core.errors import UserError
from xlingbench.leaderboard.collect import (FINISHED_ONLY, TAG, collect, connect, experiment_ids, metric_histories,
                                            mlflow_errors, task_row)
from xlingbench.sinks.mlflow_sink import DEFAULT_EXPERIMENT, finished_runs, tag_clause
from xlingbench.sinks.store import Histories, TaskRow, one_revision, refs_of

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

#: a run-id prefix must be at least this long (``xlingbench run`` prints 8 characters)
PREFIX_LENGTH = 8
#: ``MODEL@STEP``: a training checkpoint by its model name and step (``out@1000``)
CHECKPOINT_REF = re.compile(r"(.+)@(\d+)")


class MlflowStore:
    """The finished task runs of some experiments (default ``xlingbench``) of one tracking store."""

    def __init__(self, tracking_uri: str | None = None, experiments: Iterable[str] = ()) -> None:
        self.client, self.uri = connect(tracking_uri)
        self.experiments = list(experiments)
        self.where = self.uri

    def rows(self) -> list[TaskRow]:
        """Every finished task run of the experiments (one paged search)."""
        return collect(self.uri, self.experiments).rows

    def resolve(self, ref: str) -> dict[str, TaskRow]:
        """``task -> row`` for a run id, a run-id prefix, an ``@FILE`` of ``run --json`` or a selector."""
        return resolve(self.client, self.uri, ref)

    def finished(self, keys: set[str]) -> dict[str, str]:
        """Which of ``keys`` a FINISHED task run of the experiments holds, mapped to its run id."""
        with mlflow_errors(self.uri):
            ids = experiment_ids(self.client, self.experiments or [DEFAULT_EXPERIMENT])
            return finished_runs(self.client, list(ids), keys)

    def histories(self, wanted: list[tuple[str, str]]) -> Histories:
        """The step metrics' histories (one request each, in parallel)."""
        return metric_histories(self.client, wanted) if wanted else {}


def resolve(client: MlflowClient, uri: str, ref: str) -> dict[str, TaskRow]:
    """``task -> row`` for a run id, a run-id prefix, an ``@FILE`` of ``run --json`` or a selector."""
    if ref.startswith("@"):
        return rows_of_file(client, uri, Path(ref[1:]))
    with mlflow_errors(uri):
        run = select(client, ref) if "=" in ref else select_checkpoint(client, ref) if CHECKPOINT_REF.fullmatch(ref) \
            else require_finished(find_run(client, ref), ref)
        if run.data.tags.get(TAG + "role") == "task":
            return {task_row(run, uri).task: task_row(run, uri)}
        children = client.search_runs(
            [run.info.experiment_id],
            filter_string=f"tags.\"mlflow.parentRunId\" = '{run.info.run_id}' and tags.\"{TAG}role\" = 'task' and {FINISHED_ONLY}",
            max_results=1000,
        )
    if not children:
        raise UserError(f"run {ref} has no task runs.", "Pass a parent model run or a task run of the xlingbench layout.")
    rows = sorted((task_row(child, uri) for child in children), key=lambda row: row.start_time)
    return {row.task: row for row in rows}  # the newest run of a task wins


def rows_of_file(client: MlflowClient, uri: str, path: Path) -> dict[str, TaskRow]:
    """``task -> row`` of the task runs a ``xlingbench run --json`` document names: one model revision."""
    with mlflow_errors(uri):
        rows = [task_row(require_finished(get_run(client, run_id), run_id), uri) for run_id in refs_of(path, "mlflow")]
    return one_revision(rows, str(path))


def find_run(client: MlflowClient, ref: str) -> Run:
    """The run with this id, or with this unique prefix of at least :data:`PREFIX_LENGTH` hex digits."""
    is_hex = all(c in "0123456789abcdef" for c in ref.lower())
    if not is_hex or not PREFIX_LENGTH <= len(ref) < 32:
        return get_run(client, ref)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, filter_string=f"attributes.run_id LIKE '{ref.lower()}%'", max_results=2) if experiments else []
    if len(runs) != 1:
        problem = f"run-id prefix {ref!r} matches {'several runs' if runs else 'no run'}."
        raise UserError(problem, "Give more characters of the id, or the whole id, or --run @FILE from `xlingbench run --json`.")
    return runs[0]


def require_finished(run: Run, ref: str) -> Run:
    """``run`` if it finished; else a UserError naming its status (a RUNNING, KILLED or FAILED run holds half a result)."""
    status = run.info.status
    if status != "FINISHED":
        why = "still running, or its process was killed" if status == "RUNNING" else "it did not finish"
        raise UserError(f"run {ref} is {status} ({why}); its numbers cannot be gated.",
                        "Rerun the same `xlingbench run` command to finish it, then gate the new run.")
    return run


def get_run(client: MlflowClient, run_id: str) -> Run:
    """The run with this id, or a UserError naming it."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException as err:
        raise UserError(
            f"no run with id {run_id!r}.",
            "Check --tracking-uri (the store it was logged to) and the id (MLflow UI, or `xlingbench run --json`).",
        ) from err


def select_checkpoint(client: MlflowClient, ref: str) -> Run:
    """The newest finished model run of ``MODEL@STEP`` (a training checkpoint, e.g. ``out@1000``) in any experiment."""
    model, step = CHECKPOINT_REF.fullmatch(ref).groups()
    query = " and ".join([tag_clause(TAG + "role", "model"), tag_clause(TAG + "model", model), tag_clause(TAG + "step", str(int(step))),
                          FINISHED_ONLY])
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, filter_string=query, max_results=1, order_by=["attributes.start_time DESC"]) if experiments else []
    if not runs:
        raise UserError(f"no finished run of model {model!r} at step {int(step)}.",
                        "Check the model name and step (`xlingbench leaderboard`, or the tags xlingbench.model and xlingbench.step in the MLflow UI).")
    return runs[0]


def select(client: MlflowClient, selector: str) -> Run:
    """The newest run matching ``EXPERIMENT:KEY=VALUE,...`` (a task run if ``task`` is a key)."""
    head = selector[: selector.index("=")]
    experiment, colon, _ = head.rpartition(":")
    if not colon or not experiment:
        raise UserError(f"bad run selector {selector!r}.", "Write EXPERIMENT:KEY=VALUE[,KEY=VALUE], e.g. xlingbench:model=xlm-roberta-xl.")
    pairs = [item.partition("=") for item in selector[len(experiment) + 1 :].split(",")]
    if any(not key or not sep for key, sep, _ in pairs):
        raise UserError(f"bad run selector {selector!r}.", "Each part after the colon must be KEY=VALUE, separated by commas.")
    tags = {(key if "." in key else TAG + key): value for key, _, value in pairs}
    tags[TAG + "role"] = "task" if TAG + "task" in tags else "model"
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise UserError(f"no MLflow experiment named {experiment!r}.", "Check the part of the selector before the colon.")
    runs = client.search_runs(
        [found.experiment_id], filter_string=" and ".join([*(tag_clause(k, v) for k, v in tags.items()), FINISHED_ONLY]),
        max_results=1, order_by=["attributes.start_time DESC"],
    )
    if not runs:
        raise UserError(f"no run matches {selector!r}.", "Check the tag values in the MLflow UI (tags xlingbench.*).")
    return runs[0]
