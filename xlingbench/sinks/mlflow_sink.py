"""The MLflow sink (the default): one parent run per model revision, one nested run per task.

Why this layout (docs/ARCHITECTURE.md spells it out): parameters are write-once descriptions
of a run, so anything that varies inside one (a layer, a training step) is a metric step;
the model's tags are copied onto every task run so that one ``search_runs`` query gives the
leaderboard everything it needs. The default store is SQLite in the working directory
(MLflow's file store is deprecated); ``--tracking-uri`` or ``MLFLOW_TRACKING_URI`` reach a server.

Lose nothing: :func:`xlingbench.sinks.open_sinks` wraps this sink in the outbox
(:mod:`xlingbench.sinks.outbox`, one folder per tracking URI), which keeps each result until MLflow
took it and stops sending once the store raises one of :func:`store_errors`. Every run it creates is tagged with this host and process id, so runs left
RUNNING by a killed process are marked KILLED by the next sink that starts (:meth:`MlflowSink.abort`
marks them at once when the runner can still say so).
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xlingbench.core.errors import UserError
from xlingbench.core.task import ModelRevision, Outcome
from xlingbench.sinks.mlflow_uri import check_server, check_writable, public_uri, resolve_tracking_uri
from xlingbench.sinks.outbox import HOST, alive
from xlingbench.sinks.store import flat_metrics, metric_key

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from xlingbench.sinks.settings import SinkSettings

DEFAULT_EXPERIMENT = "xlingbench"
#: prefix of every tag xlingbench writes
TAG = "xlingbench."
#: MLflow 3.0-3.16 open an experiment in their GenAI view unless this tag says model development
EXPERIMENT_KIND = "mlflow.experimentKind"
MODEL_DEVELOPMENT = "custom_model_development"
#: MLflow 3.17's UI no longer reads that tag: its view is the page's ``workflowType`` query parameter
#: (``genai`` or ``machine_learning``), else the browser's localStorage ``mlflow.workflowType_v1``,
#: else ``genai``. A link to an experiment or run opens the runs table only with this query appended.
MODEL_TRAINING_VIEW = "?workflowType=machine_learning"
_MAX_PARAM = 500
#: the one ``TaskResult.info`` entry kept as a tag (the board shows warnings without opening artifacts)
WARNINGS_TAG = "info.warnings"
BATCH = 100
#: MLflow's HTTP client retries a silent server for minutes (7 retries, 120 s timeouts); ours gives
#: up in seconds, since a result it cannot send is kept in the outbox. It also prints a "View run"
#: link on stdout for every run it closes, which would corrupt ``run --json``. Set in this process
#: only, and a value the user set wins.
HTTP_CLIENT_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                   "MLFLOW_HTTP_REQUEST_TIMEOUT": "30", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}
#: words of an abort reason that mean an interrupt (Ctrl-C, SIGTERM): the runs are KILLED; any other reason: FAILED
INTERRUPTS = ("interrupt", "sigint", "sigterm")


def store_errors() -> tuple[type[BaseException], ...]:
    """What a store that stopped answering raises: MLflow's errors (an HTTP client's are wrapped in
    them, a SQL store's too), requests' and the OS's. Anything else is a bug and propagates."""
    import requests
    from mlflow.exceptions import MlflowException

    return MlflowException, requests.RequestException, OSError


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
        check_writable(self.uri)
        check_server(self.uri)
        prepare_store(self.uri)
        if self.uri.startswith(("http://", "https://")):
            for name, value in HTTP_CLIENT_ENV.items():
                os.environ.setdefault(name, value)
        self.client = MlflowClient(self.uri)
        self.experiment_id = experiment_id(self.client, settings.experiment)
        self._parents: dict[tuple[str, str, int | None], str] = {}
        #: the store, as the outbox (xlingbench.sinks.outbox) keys and prints it
        self.where, self.shown = self.uri, public_uri(self.uri)
        self.mark_killed_runs()

    @staticmethod
    def store_errors() -> tuple[type[BaseException], ...]:
        """What this sink raises when its store stopped answering (the outbox then keeps the result)."""
        return store_errors()

    def write(self, outcome: Outcome) -> str:
        """Log the outcome as a nested run; returns its run id (a store's error propagates to the outbox)."""
        return self._log_outcome(outcome)

    def _log_outcome(self, outcome: Outcome) -> str:
        """One nested run holding the outcome (FINISHED last: a run that is FINISHED is complete)."""
        parent = self._parent(outcome)
        tags = {**model_tags(outcome.model), **task_tags(outcome), **info_tags(outcome.result.info),
                **process_tags(), "mlflow.parentRunId": parent}
        run = self.client.create_run(self.experiment_id, start_time=_ms(outcome.started), tags=tags,
                                     run_name=task_run_name(outcome.task.name, outcome.model))
        run_id = run.info.run_id
        self._log_values(run_id, outcome.result.params, flat_metrics(outcome.result), outcome.result.step_metrics, outcome.ended)
        self._log_artifacts(run_id, outcome)
        if outcome.model.step is not None and outcome.task.main_score in outcome.result.metrics:
            self._trajectory_point(outcome)
        self.client.set_terminated(run_id, "FINISHED", end_time=_ms(outcome.ended))
        return run_id

    def finish_model(self, model: ModelRevision, outcomes: list[Outcome]) -> None:
        """Put every task's headline on the parent run (the chart view compares models and steps) and close it.

        The outbox does not call it once the store failed: the parent stays RUNNING until the next
        sink on that store marks it KILLED, and the results wait in the outbox."""
        parent = self._parents.pop(_model_key(model), None)
        if parent is None:
            return
        ended = max((o.ended for o in outcomes), default=time.time())
        headlines = {f"{o.task.name}/{o.task.main_score}": o.headline for o in outcomes}
        self._log_values(parent, {}, headlines, {}, ended)
        self.client.set_terminated(parent, "FINISHED", end_time=_ms(ended))

    def abort(self, reason: str) -> None:
        """Close every parent run still open, because the run stopped: KILLED when ``reason`` names an
        interrupt (KeyboardInterrupt, SIGINT, SIGTERM), else FAILED; the reason goes on a tag.

        Called by the runner while an exception propagates, so it never raises a store's error itself."""
        status = "KILLED" if any(word in reason.lower() for word in INTERRUPTS) else "FAILED"
        parents, self._parents = list(self._parents.values()), {}
        try:
            for parent in parents:
                self.client.set_tag(parent, f"{TAG}abort_reason", reason[:_MAX_PARAM])
                self.client.set_terminated(parent, status)
        except store_errors():
            pass  # the store stopped answering: the next sink on it marks these runs KILLED

    def mark_killed_runs(self) -> None:
        """Mark KILLED every run of the experiment left RUNNING by a process of this host that is gone
        (one search): the board and the gate never read them, and the UI stops showing them as live."""
        query = f"attributes.status = 'RUNNING' and {tag_clause(f'{TAG}host', HOST)}"
        for run in self.client.search_runs([self.experiment_id], filter_string=query, max_results=10_000):
            pid = run.data.tags.get(f"{TAG}pid", "")
            if pid.isdigit() and not alive(int(pid)):
                self.client.set_terminated(run.info.run_id, "KILLED")

    def _parent(self, outcome: Outcome) -> str:
        key = _model_key(outcome.model)
        if key not in self._parents:
            tags = {**model_tags(outcome.model), **process_tags(), "xlingbench.role": "model"}
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
        self.client.log_dict(run_id, result.info, "provenance.json")
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            for name, rows in result.tables.items():
                (folder / f"{name}.csv").write_text(_csv(rows), encoding="utf-8")
            label = outcome.model.label()
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
        tags = {f"{TAG}role": "trajectory", f"{TAG}model": model, f"{TAG}config": fingerprint, **process_tags(),
                "mlflow.runName": f"{task} trajectory · {model} ({fingerprint[:8]})"}
        run = self.client.create_run(self.experiment_id, tags=tags)
        self.client.set_terminated(run.info.run_id)
        return run.info.run_id

    def finished(self, keys: set[str]) -> dict[str, str]:
        """Which of ``keys`` a FINISHED task run of the experiment holds, mapped to its run id."""
        return finished_runs(self.client, [self.experiment_id], keys)


def finished_runs(client: "MlflowClient", experiment_ids: list[str], keys: set[str]) -> dict[str, str]:
    """Which of ``keys`` a FINISHED task run of the experiments holds, mapped to its run id.

    One paged search over the task-key tag (MLflow filters cannot say ``IN`` for tags); a run
    a killed process left RUNNING does not count, so its task runs again.
    """
    wanted = tag_clause(f"{TAG}task_key", next(iter(keys))) if len(keys) == 1 else f'tags."{TAG}task_key" IS NOT NULL'
    query = f"{wanted} and attributes.status = 'FINISHED'"  # one key (the writer's check): an indexed equality
    found: dict[str, str] = {}
    token = None
    while True:
        page = client.search_runs(experiment_ids, filter_string=query, max_results=1000, page_token=token)
        for run in page:
            key = run.data.tags.get(f"{TAG}task_key")
            if key in keys:
                found.setdefault(key, run.info.run_id)
        token = page.token
        if not token:
            return found


def experiment_id(client: "MlflowClient", name: str) -> str:
    """The experiment's id, created as a model-development experiment (MLflow 3.0-3.16 open others in their
    GenAI view; 3.17 decides by the link, see :data:`MODEL_TRAINING_VIEW`)."""
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


def model_run_name(model: ModelRevision) -> str:
    """The parent run's name: the model, its full revision and the step."""
    return model.label(full=True)


def task_run_name(task: str, model: ModelRevision) -> str:
    """A nested run's name, unique among the runs a compare view puts side by side."""
    return f"{task} · {model.label()}"


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
    tags = {f"{TAG}role": "task", f"{TAG}task": meta.name, f"{TAG}task_version": meta.version,
            f"{TAG}main_score": meta.main_score, f"{TAG}higher_is_better": direction, f"{TAG}config": outcome.fingerprint}
    key = outcome.task_key
    if key:  # what a rerun looks up to skip this task run (see MlflowSink.finished)
        tags[f"{TAG}task_key"] = key
    return tags


def process_tags() -> dict[str, str]:
    """Who created a run: the next sink on this host marks it KILLED if it is RUNNING and that process is gone."""
    return {f"{TAG}host": HOST, f"{TAG}pid": str(os.getpid())}


def _model_key(model: ModelRevision) -> tuple[str, str, int | None]:
    return model.name, model.revision, model.step


def _ms(seconds: float) -> int:
    return int(round(seconds * 1000))


def info_tags(info: dict[str, Any]) -> dict[str, str]:
    """The entries of ``TaskResult.info`` the board reads from a search as tags: its warnings (a JSON
    list, cut at 500 characters). The whole record (fingerprints of the data, versions, device...)
    is the run's ``provenance.json`` artifact: some 80 ``info.*`` tags buried the headline in the UI."""
    warnings = info.get("warnings")
    return {WARNINGS_TAG: json.dumps(warnings, ensure_ascii=False, default=str)[:_MAX_PARAM]} if warnings else {}


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


