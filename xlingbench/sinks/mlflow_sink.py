"""The MLflow sink (the default): one parent run per model revision, one nested run per task.

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
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xlingbench.core.errors import UserError
from xlingbench.core.task import ModelRevision, Outcome, TaskResult

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from xlingbench.sinks import SinkSettings

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_EXPERIMENT = "xlingbench"
#: prefix of every tag xlingbench writes
TAG = "xlingbench."
#: MLflow 3 opens an experiment in its GenAI view unless this tag says model development
EXPERIMENT_KIND = "mlflow.experimentKind"
MODEL_DEVELOPMENT = "custom_model_development"
_INVALID = re.compile(r"[^\w\-. /:]")
_MAX_PARAM = 500
HEALTH_TIMEOUT_S = 5.0
BATCH = 100


def metric_key(name: str) -> str:
    """``name`` with characters MLflow refuses in keys replaced by ``_``."""
    return _INVALID.sub("_", name)


def resolve_tracking_uri(uri: str | None) -> str:
    """The explicit URI, else MLFLOW_TRACKING_URI, else the SQLite store in the working directory."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


class MlflowSink:
    """Logs each model revision as a parent run and each of its task results as a nested run.

    Runs are created with the client API and the outcome's own start and end times, so a run's
    duration in the UI is the task's real duration however late it is written (by a driver
    collecting results from workers, say), and nothing depends on MLflow's global active run.
    """

    def __init__(self, settings: "SinkSettings") -> None:
        from mlflow import MlflowClient

        from xlingbench.sinks.sqlite_store import prepare_store

        for name in ("mlflow", "alembic"):  # their INFO lines about table creation are noise to a user
            logging.getLogger(name).setLevel(logging.WARNING)
        self.uri = resolve_tracking_uri(settings.tracking_uri)
        check_server(self.uri)
        prepare_store(self.uri)
        self.client = MlflowClient(self.uri)
        self.experiment_id = experiment_id(self.client, settings.experiment)
        self._parents: dict[tuple[str, str, int | None], str] = {}

    def write(self, outcome: Outcome) -> str:
        """One nested run holding the outcome; returns its run id."""
        parent = self._parent(outcome)
        tags = {**model_tags(outcome.model), **task_tags(outcome), **info_tags(outcome.result.info),
                "mlflow.parentRunId": parent}
        run = self.client.create_run(self.experiment_id, start_time=_ms(outcome.started), tags=tags,
                                     run_name=task_run_name(outcome.task.name, outcome.model))
        run_id = run.info.run_id
        self._log_values(run_id, outcome.result.params, _flat_metrics(outcome.result), outcome.result.step_metrics, outcome.ended)
        self._log_artifacts(run_id, outcome)
        self.client.set_terminated(run_id, "FINISHED", end_time=_ms(outcome.ended))
        if outcome.model.step is not None and outcome.task.main_score in outcome.result.metrics:
            self._trajectory_point(outcome)
        return run_id

    def finish_model(self, model: ModelRevision, outcomes: list[Outcome]) -> None:
        """Put every task's headline on the parent run (the chart view compares models and steps) and close it."""
        parent = self._parents.pop(_model_key(model), None)
        if parent is None:
            return
        ended = max((o.ended for o in outcomes), default=time.time())
        headlines = {f"{o.task.name}/{o.task.main_score}": o.headline for o in outcomes}
        self._log_values(parent, {}, headlines, {}, ended)
        self.client.set_terminated(parent, "FINISHED", end_time=_ms(ended))

    def _parent(self, outcome: Outcome) -> str:
        key = _model_key(outcome.model)
        if key not in self._parents:
            tags = {**model_tags(outcome.model), "xlingbench.role": "model"}
            run = self.client.create_run(self.experiment_id, start_time=_ms(outcome.started), tags=tags,
                                         run_name=model_run_name(outcome.model))
            self._log_values(run.info.run_id, outcome.model.provenance, {}, {}, outcome.started)
            self._parents[key] = run.info.run_id
        return self._parents[key]

    def _log_values(self, run_id: str, params: dict[str, Any], metrics: dict[str, float],
                    steps: dict[str, list[tuple[int, float]]], when: float) -> None:
        from mlflow.entities import Metric, Param

        stamp = _ms(when)
        values = [Metric(metric_key(k), float(v), stamp, 0) for k, v in metrics.items()]
        values += [Metric(metric_key(k), float(v), stamp, int(s)) for k, series in steps.items() for s, v in series]
        cleaned = [Param(k, v) for k, v in _clean_params(params).items()]
        for start in range(0, max(len(values), len(cleaned)), BATCH):  # MLflow takes at most 100 params a batch
            self.client.log_batch(run_id, metrics=values[start:start + BATCH], params=cleaned[start:start + BATCH])

    def _log_artifacts(self, run_id: str, outcome: Outcome) -> None:
        from xlingbench.sinks.charts import draw

        result = outcome.result
        self.client.log_dict(run_id, result.to_json_dict(), "result.json")
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            for name, rows in result.tables.items():
                (folder / f"{name}.csv").write_text(_csv(rows), encoding="utf-8")
            label = model_label(outcome.model)
            for chart in outcome.task.charts:
                svg = draw(chart, {label: (result.metrics, result.step_metrics)})
                if svg is not None:
                    (folder / f"{chart.name}.svg").write_text(svg, encoding="utf-8")
            for path in sorted(folder.iterdir()):
                self.client.log_artifact(run_id, str(path), "plots" if path.suffix == ".svg" else "tables")

    def _trajectory_point(self, outcome: Outcome) -> None:
        """The headline at the training step, in the model's trajectory run (one per model and configuration)."""
        run_id = self._trajectory_run(outcome.model.name, outcome.task.name, outcome.fingerprint)
        key = metric_key(f"{outcome.task.name}/{outcome.task.main_score}")
        self.client.log_metric(run_id, key, outcome.headline, timestamp=_ms(outcome.ended), step=int(outcome.model.step))

    def _trajectory_run(self, model: str, task: str, fingerprint: str) -> str:
        query = " and ".join([tag_clause(f"{TAG}role", "trajectory"), tag_clause(f"{TAG}model", model),
                              tag_clause(f"{TAG}config", fingerprint)])
        found = self.client.search_runs([self.experiment_id], filter_string=query, max_results=1)
        if found:
            return found[0].info.run_id
        tags = {f"{TAG}role": "trajectory", f"{TAG}model": model, f"{TAG}config": fingerprint,
                "mlflow.runName": f"{task} trajectory · {model} ({fingerprint[:8]})"}
        run = self.client.create_run(self.experiment_id, tags=tags)
        self.client.set_terminated(run.info.run_id)
        return run.info.run_id


def experiment_id(client: "MlflowClient", name: str) -> str:
    """The experiment's id, created as a model-development experiment (MLflow 3 opens others in its GenAI view)."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is None:
        try:
            return client.create_experiment(name, tags={EXPERIMENT_KIND: MODEL_DEVELOPMENT})
        except MlflowException:  # two runs started at once: the other one created it in between
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
    if found.tags.get(EXPERIMENT_KIND) is None:
        client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND, MODEL_DEVELOPMENT)
    return found.experiment_id


def model_label(model: ModelRevision) -> str:
    """``model@revision[:12] (step N)``: how a model revision reads in run names and legends."""
    step = "" if model.step is None else f" (step {model.step})"
    return f"{model.name}@{model.revision[:12]}{step}"


def model_run_name(model: ModelRevision) -> str:
    """The parent run's name: the model, its full revision and the step."""
    step = "" if model.step is None else f" (step {model.step})"
    return f"{model.name}@{model.revision}{step}"


def task_run_name(task: str, model: ModelRevision) -> str:
    """A nested run's name, unique among the runs a compare view puts side by side."""
    return f"{task} · {model_label(model)}"


def model_tags(model: ModelRevision) -> dict[str, str]:
    """The tags every run of this model revision carries (the leaderboard reads these)."""
    tags = {f"{TAG}model": model.name, f"{TAG}model_id": model.model_id, f"{TAG}revision": model.revision,
            f"{TAG}family": model.family, f"{TAG}arch": model.arch, f"{TAG}size": model.size, f"{TAG}licence": model.licence}
    if model.step is not None:
        tags[f"{TAG}step"] = str(model.step)
    return tags


def task_tags(outcome: Outcome) -> dict[str, str]:
    """What a task run says about its task and configuration."""
    meta = outcome.task
    direction = "none" if meta.higher_is_better is None else str(meta.higher_is_better).lower()
    return {f"{TAG}role": "task", f"{TAG}task": meta.name, f"{TAG}task_version": meta.version,
            f"{TAG}main_score": meta.main_score, f"{TAG}higher_is_better": direction, f"{TAG}config": outcome.fingerprint}


def _model_key(model: ModelRevision) -> tuple[str, str, int | None]:
    return model.name, model.revision, model.step


def _ms(seconds: float) -> int:
    return int(round(seconds * 1000))


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
