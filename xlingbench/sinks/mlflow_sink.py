"""The MLflow sink: one parent run per model revision, one nested run per task.

Why this layout (docs/ARCHITECTURE.md spells it out): parameters are write-once descriptions
of a run, so anything that varies inside one (a layer, a training step) is a metric step;
the model's tags are copied onto every task run so that one ``search_runs`` query gives the
leaderboard everything it needs. The default store is SQLite in the working directory
(MLflow's file store is deprecated); ``--tracking-uri`` or ``MLFLOW_TRACKING_URI`` reach a server.
"""
from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from xlingbench.core.errors import UserError
from xlingbench.core.task import TaskMetadata, TaskResult

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_EXPERIMENT = "xlingbench"
_INVALID = re.compile(r"[^\w\-. /:]")
_MAX_PARAM = 500
HEALTH_TIMEOUT_S = 5.0


def metric_key(name: str) -> str:
    """``name`` with characters MLflow refuses in keys replaced by ``_``."""
    return _INVALID.sub("_", name)


def resolve_tracking_uri(uri: str | None) -> str:
    """The explicit URI, else MLFLOW_TRACKING_URI, else the SQLite store in the working directory."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


class Tracker:
    """Logs task results of model revisions into one MLflow experiment."""

    def __init__(self, tracking_uri: str | None = None, experiment: str = DEFAULT_EXPERIMENT) -> None:
        import mlflow

        for name in ("mlflow", "alembic"):  # their INFO lines about table creation are noise to a user
            logging.getLogger(name).setLevel(logging.WARNING)

        self.uri = resolve_tracking_uri(tracking_uri)
        check_server(self.uri)
        mlflow.set_tracking_uri(self.uri)
        self.experiment_id = mlflow.set_experiment(experiment).experiment_id
        self.client = mlflow.MlflowClient(self.uri)

    @contextmanager
    def model_run(self, tags: dict[str, str], params: dict[str, Any]) -> Iterator[str]:
        """A parent run for one model revision; yields its run id."""
        import mlflow

        name = f"{tags['xlingbench.model']}@{tags['xlingbench.revision'][:8]}"
        with mlflow.start_run(run_name=name, tags={**tags, "xlingbench.role": "model"}) as run:
            mlflow.log_params(_clean_params(params))
            yield run.info.run_id

    def log_task(self, result: TaskResult, metadata: TaskMetadata, model_tags: dict[str, str]) -> str:
        """A nested run under the active model run holding one task's result; returns its id."""
        import mlflow

        tags = {**model_tags, "xlingbench.role": "task", "xlingbench.task": metadata.name,
                "xlingbench.task_version": metadata.version, "xlingbench.main_score": metadata.main_score,
                "xlingbench.higher_is_better": str(metadata.higher_is_better).lower()}
        with mlflow.start_run(run_name=metadata.name, nested=True, tags={**tags, **info_tags(result.info)}) as run:
            mlflow.log_params(_clean_params(result.params))
            mlflow.log_metrics(_flat_metrics(result))
            for name, series in result.step_metrics.items():
                for step, value in series:
                    mlflow.log_metric(metric_key(name), float(value), step=int(step))
            self._log_artifacts(result)
            return run.info.run_id

    def log_trajectory_point(self, model: str, task: str, metric: str, value: float, step: int) -> None:
        """Log ``value`` at training ``step`` into the model's trajectory run (one per model)."""
        run_id = self._trajectory_run(model)
        self.client.log_metric(run_id, metric_key(f"{task}/{metric}"), float(value), step=int(step))

    def _trajectory_run(self, model: str) -> str:
        query = f"{tag_clause('xlingbench.role', 'trajectory')} and {tag_clause('xlingbench.model', model)}"
        found = self.client.search_runs([self.experiment_id], filter_string=query, max_results=1)
        if found:
            return found[0].info.run_id
        tags = {"xlingbench.role": "trajectory", "xlingbench.model": model, "mlflow.runName": f"{model} trajectory"}
        run = self.client.create_run(self.experiment_id, tags=tags)
        self.client.set_terminated(run.info.run_id)
        return run.info.run_id

    @staticmethod
    def _log_artifacts(result: TaskResult) -> None:
        import mlflow

        from xlingbench.sinks.plots import render

        mlflow.log_dict(result.to_json_dict(), "result.json")
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            for name, rows in result.tables.items():
                (folder / f"{name}.csv").write_text(_csv(rows), encoding="utf-8")
            for plot in result.plots:
                render(plot, folder)
            for path in sorted(folder.iterdir()):
                mlflow.log_artifact(str(path), "plots" if path.suffix == ".png" else "tables")


def _flat_metrics(result: TaskResult) -> dict[str, float]:
    metrics = {metric_key(k): float(v) for k, v in result.metrics.items()}
    for name, (low, high) in result.intervals.items():
        metrics[metric_key(f"{name}_ci_low")] = float(low)
        metrics[metric_key(f"{name}_ci_high")] = float(high)
    for phase, seconds in result.timings.items():
        metrics[metric_key(f"time_{phase}_s")] = float(seconds)
    return metrics


def info_tags(info: dict[str, Any], prefix: str = "info") -> dict[str, str]:
    """``TaskResult.info`` (fingerprints, versions, warnings...) as searchable ``info.*`` tags.

    Nested dicts are flattened with dots; lists and long values are JSON, cut at 500 characters.
    The whole record is also in the run's ``result.json``.
    """
    tags: dict[str, str] = {}
    for key, value in info.items():
        name = metric_key(f"{prefix}.{key}")
        if isinstance(value, dict):
            tags.update(info_tags(value, name))
        elif value is not None:
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
            tags[name] = text[:_MAX_PARAM]
    return tags


def _clean_params(params: dict[str, Any]) -> dict[str, str]:
    return {metric_key(k): str(v)[:_MAX_PARAM] for k, v in params.items()}


def _csv(rows: list[dict[str, Any]]) -> str:
    import csv
    import io

    if not rows:
        return ""
    out = io.StringIO()
    columns = list(dict.fromkeys(k for row in rows for k in row))
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v for k, v in row.items()})
    return out.getvalue()


def tag_clause(key: str, value: str) -> str:
    """One ``tags."key" = 'value'`` clause of an MLflow filter string, quoted to fit ``value``."""
    if "'" in value and '"' in value:
        raise UserError(f"the tag value {value!r} has both quote characters, which MLflow cannot filter on.",
                        "Select by another tag, or rename the model.")
    quote = '"' if "'" in value else "'"
    return f'tags."{key}" = {quote}{value}{quote}'


def public_uri(tracking_uri: str) -> str:
    """The URI without any ``user:password@`` part, fit to print or publish."""
    parts = urllib.parse.urlsplit(tracking_uri)
    if not parts.password and not parts.username:
        return tracking_uri
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def check_server(uri: str) -> None:
    """Fail with one clear line when a tracking server does not answer its /health endpoint.

    MLflow itself retries an unreachable server for minutes before it gives up.
    """
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=HEALTH_TIMEOUT_S) as reply:
            if reply.status == 200:
                return
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise UserError(f"the MLflow tracking server at {public_uri(uri)} did not answer ({err}).",
                        "Start it (README: 'A shared tracking server'), pass the right --tracking-uri, "
                        "or drop --tracking-uri to use the local SQLite store.") from err
    raise UserError(f"the MLflow tracking server at {public_uri(uri)} is not healthy.", "Check the server's log.")
