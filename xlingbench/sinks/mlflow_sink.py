"""The MLflow sink (the default): one parent run per model revision, one nested run per task.

Why this layout (docs/ARCHITECTURE.md spells it out): parameters are write-once descriptions
of a run, so anything that varies inside one (a layer, a training step) is a metric step;
the model's tags are copied onto every task run so that one ``search_runs`` query gives the
leaderboard everything it needs. The default store is SQLite in the working directory
(MLflow's file store is deprecated); ``--tracking-uri`` or ``MLFLOW_TRACKING_URI`` reach a server.

Lose nothing: each result is first kept as a JSON document in an outbox under the cache
(:func:`outbox_dir`, one folder per tracking URI), then logged, then dropped from the outbox. When
the store fails (a server that died), the sink stops trying it for the rest of the run, so the run
goes on computing and keeps every further result in the outbox; the next sink opened on that URI
sends them first. Every run it creates is tagged with this host and process id, so runs left
RUNNING by a killed process are marked KILLED by the next sink that starts (:meth:`MlflowSink.abort`
marks them at once when the runner can still say so).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xlingbench.core.errors import UserError
from xlingbench.core.task import ModelRevision, Outcome, TaskMetadata, TaskResult
from xlingbench.sinks import TASK_KEY

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from xlingbench.sinks import SinkSettings

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
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
_INVALID = re.compile(r"[^\w\-. /:]")
_MAX_PARAM = 500
HEALTH_TIMEOUT_S = 5.0
BATCH = 100
#: MLflow's HTTP client retries a silent server for minutes (7 retries, 120 s timeouts); ours gives
#: up in seconds, since a result it cannot send is kept in the outbox. It also prints a "View run"
#: link on stdout for every run it closes, which would corrupt ``run --json``. Set in this process
#: only, and a value the user set wins.
HTTP_CLIENT_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                   "MLFLOW_HTTP_REQUEST_TIMEOUT": "30", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}
#: the URI schemes MLflow has a tracking store for (``postgresql+psycopg2`` counts as ``postgresql``)
SCHEMES = ("", "file", "sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks")
HOST = socket.gethostname()
#: how much of a store's error the last line quotes (an HTTP client's runs to a paragraph)
ERROR_CHARS = 160
#: words of an abort reason that mean an interrupt (Ctrl-C, SIGTERM): the runs are KILLED; any other reason: FAILED
INTERRUPTS = ("interrupt", "sigint", "sigterm")


@dataclass
class Delivery:
    """What the MLflow sinks of this process did, for the command line's last line: how many
    results reached a store, and which outboxes keep results a store did not take (and why)."""

    logged: int = 0
    #: outbox folder -> (the store's printable URI, the error that made the sink stop sending)
    kept: dict[Path, tuple[str, str]] = field(default_factory=dict)


#: this process's tally (the CLI resets it per command)
DELIVERY = Delivery()


def metric_key(name: str) -> str:
    """``name`` with characters MLflow refuses in keys replaced by ``_``."""
    return _INVALID.sub("_", name)


def resolve_tracking_uri(uri: str | None) -> str:
    """The explicit URI, else MLFLOW_TRACKING_URI, else the SQLite store in the working directory;
    a URI MLflow has no store for, or an in-memory SQLite store (lost at exit), is a UserError."""
    resolved = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    parts = urllib.parse.urlsplit(resolved)
    scheme = parts.scheme.split("+")[0].lower()
    if scheme not in SCHEMES and len(scheme) > 1:  # one letter: a Windows drive, a path
        raise UserError(f"the tracking URI {public_uri(resolved)} has a scheme MLflow has no store for ({parts.scheme}:).",
                        "Use sqlite:///PATH.db, http(s)://HOST:PORT of a server, or a database URI (postgresql://, mysql://).")
    if scheme == "sqlite" and parts.path in ("", "/", "/:memory:"):
        raise UserError(f"the tracking URI {resolved} is an in-memory SQLite store: every result would be lost at exit.",
                        "Use a file, e.g. sqlite:///mlflow.db (the default).")
    return resolved


def check_writable(uri: str) -> None:
    """A local SQLite store must be writable, and so must its folder (SQLite writes a journal beside
    it): found here at once, in one line, rather than by MLflow after minutes of retries."""
    from xlingbench.sinks.sqlite_store import sqlite_path

    path = sqlite_path(uri)  # the file as SQLAlchemy reads the URI (query parameters and all)
    if path is None:
        return
    try:
        with tempfile.TemporaryFile(dir=path.parent):
            pass
        if path.exists():
            with open(path, "ab"):
                pass
    except OSError as err:
        raise UserError(f"cannot write the MLflow store {path} ({err.strerror}: {err.filename or path.parent}).",
                        "Pass --tracking-uri sqlite:///PATH in a folder you can write to.") from err


def outbox_dir(uri: str, cache_dir: Path | None = None) -> Path:
    """Where results for ``uri`` wait until its store takes them: ``<cache>/outbox/<hash of the URI>``
    (the run's ``--cache-dir``, else the default cache)."""
    from xlingbench.inputs.cache import default_cache_dir

    return (cache_dir or default_cache_dir()) / "outbox" / hashlib.sha256(uri.encode("utf-8")).hexdigest()[:16]


def pending(folder: Path) -> list[Path]:
    """The outbox documents in ``folder``, oldest first (their names start with the time they were kept)."""
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def store_errors() -> tuple[type[BaseException], ...]:
    """What a store that stopped answering raises: MLflow's errors (an HTTP client's are wrapped in
    them, a SQL store's too), requests' and the OS's. Anything else is a bug and propagates."""
    import requests
    from mlflow.exceptions import MlflowException

    return MlflowException, requests.RequestException, OSError


def alive(pid: int) -> bool:
    """Whether a process with this id runs on this host (one we may not signal runs too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
        self.outbox = outbox_dir(self.uri, settings.cache_dir)
        #: why the store stopped taking results (None while it takes them)
        self.offline: str | None = None
        self.mark_killed_runs()
        self.send_outbox()

    def write(self, outcome: Outcome) -> str | None:
        """Keep the outcome in the outbox, log it as a nested run, drop it from the outbox; returns
        its run id, or None when the store did not take it (it then waits in the outbox)."""
        kept = self._keep(outcome)
        run_id = self._deliver(outcome)
        if run_id is not None:
            kept.unlink()
        return run_id

    def _keep(self, outcome: Outcome) -> Path:
        """Write the outcome's JSON document to the outbox (atomically) before anything is sent."""
        from xlingbench.inputs.cache import write_atomic
        from xlingbench.sinks.json_sink import to_document

        path = self.outbox / f"{time.time_ns()}-{os.getpid()}.json"
        if not (self.outbox / "tracking_uri.txt").exists():  # for a person reading the folder
            write_atomic(self.outbox / "tracking_uri.txt", public_uri(self.uri) + "\n")
        document = {"host": HOST, "pid": os.getpid(), "outcome": to_document(outcome)}
        write_atomic(path, json.dumps(document, ensure_ascii=False, allow_nan=False, default=str))
        return path

    def _deliver(self, outcome: Outcome) -> str | None:
        """Log the outcome unless the store failed earlier in this run; a failure now stops all sending."""
        if self.offline is None:
            try:
                run_id = self._log_outcome(outcome)
            except store_errors() as err:
                self._stop_sending(err)
            else:
                DELIVERY.logged += 1
                return run_id
        DELIVERY.kept[self.outbox] = (public_uri(self.uri), self.offline or "")
        return None

    def _stop_sending(self, err: BaseException) -> None:
        """Remember why the store failed; nothing more is sent to it in this run."""
        text = (str(getattr(err, "message", "") or err).strip().splitlines() or [type(err).__name__])[0]
        self.offline = text if len(text) <= ERROR_CHARS else text[:ERROR_CHARS] + "…"

    def _log_outcome(self, outcome: Outcome) -> str:
        """One nested run holding the outcome (FINISHED last: a run that is FINISHED is complete)."""
        parent = self._parent(outcome)
        tags = {**model_tags(outcome.model), **task_tags(outcome), **info_tags(outcome.result.info),
                **process_tags(), "mlflow.parentRunId": parent}
        run = self.client.create_run(self.experiment_id, start_time=_ms(outcome.started), tags=tags,
                                     run_name=task_run_name(outcome.task.name, outcome.model))
        run_id = run.info.run_id
        self._log_values(run_id, outcome.result.params, _flat_metrics(outcome.result), outcome.result.step_metrics, outcome.ended)
        self._log_artifacts(run_id, outcome)
        if outcome.model.step is not None and outcome.task.main_score in outcome.result.metrics:
            self._trajectory_point(outcome)
        self.client.set_terminated(run_id, "FINISHED", end_time=_ms(outcome.ended))
        return run_id

    def finish_model(self, model: ModelRevision, outcomes: list[Outcome]) -> None:
        """Put every task's headline on the parent run (the chart view compares models and steps) and close it.

        A store that failed is not tried again: the parent stays RUNNING until the next sink on
        that store marks it KILLED, and the results wait in the outbox."""
        parent = self._parents.pop(_model_key(model), None)
        if parent is None or self.offline is not None:
            return
        ended = max((o.ended for o in outcomes), default=time.time())
        headlines = {f"{o.task.name}/{o.task.main_score}": o.headline for o in outcomes}
        try:
            self._log_values(parent, {}, headlines, {}, ended)
            self.client.set_terminated(parent, "FINISHED", end_time=_ms(ended))
        except store_errors() as err:
            self._stop_sending(err)

    def abort(self, reason: str) -> None:
        """Close every parent run still open, because the run stopped: KILLED when ``reason`` names an
        interrupt (KeyboardInterrupt, SIGINT, SIGTERM), else FAILED; the reason goes on a tag.

        Called by the runner while an exception propagates, so it never raises a store's error itself."""
        status = "KILLED" if any(word in reason.lower() for word in INTERRUPTS) else "FAILED"
        parents, self._parents = list(self._parents.values()), {}
        if self.offline is not None:
            return
        try:
            for parent in parents:
                self.client.set_tag(parent, f"{TAG}abort_reason", reason[:_MAX_PARAM])
                self.client.set_terminated(parent, status)
        except store_errors() as err:
            self._stop_sending(err)

    def mark_killed_runs(self) -> None:
        """Mark KILLED every run of the experiment left RUNNING by a process of this host that is gone
        (one search): the board and the gate never read them, and the UI stops showing them as live."""
        query = f"attributes.status = 'RUNNING' and {tag_clause(f'{TAG}host', HOST)}"
        for run in self.client.search_runs([self.experiment_id], filter_string=query, max_results=10_000):
            pid = run.data.tags.get(f"{TAG}pid", "")
            if pid.isdigit() and not alive(int(pid)):
                self.client.set_terminated(run.info.run_id, "KILLED")

    def send_outbox(self) -> None:
        """Send the results an earlier run kept for this store (oldest first; one lock, so two runs
        starting together send each once), each model's under a new parent run. Results kept by a
        process that still runs are its own to send."""
        from filelock import FileLock

        if not pending(self.outbox):  # the common case: nothing kept, nothing written
            return
        sent: dict[tuple[str, str, int | None], list[Outcome]] = {}
        with FileLock(str(self.outbox / ".lock")):
            for path in pending(self.outbox):
                document = json.loads(path.read_text(encoding="utf-8"))
                if document.get("host") != HOST or (document.get("pid") != os.getpid() and alive(int(document.get("pid", 0)))):
                    continue
                outcome = outcome_of(document["outcome"])
                if self._deliver(outcome) is None:
                    break
                path.unlink()
                sent.setdefault(_model_key(outcome.model), []).append(outcome)
        for outcomes in sent.values():
            self.finish_model(outcomes[0].model, outcomes)

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
        tags = {f"{TAG}role": "trajectory", f"{TAG}model": model, f"{TAG}config": fingerprint, **process_tags(),
                "mlflow.runName": f"{task} trajectory · {model} ({fingerprint[:8]})"}
        run = self.client.create_run(self.experiment_id, tags=tags)
        self.client.set_terminated(run.info.run_id)
        return run.info.run_id

    def finished(self, keys: set[str]) -> dict[str, str]:
        """Which of ``keys`` a FINISHED task run of the experiment holds, mapped to its run id.

        One paged search over the task-key tag (MLflow filters cannot say ``IN`` for tags); a run
        a killed process left RUNNING does not count, so its task runs again.
        """
        query = f'tags."{TAG}task_key" IS NOT NULL and attributes.status = \'FINISHED\''
        found: dict[str, str] = {}
        token = None
        while True:
            page = self.client.search_runs([self.experiment_id], filter_string=query, max_results=1000, page_token=token)
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
    tags = {f"{TAG}role": "task", f"{TAG}task": meta.name, f"{TAG}task_version": meta.version,
            f"{TAG}main_score": meta.main_score, f"{TAG}higher_is_better": direction, f"{TAG}config": outcome.fingerprint}
    key = outcome.result.info.get(TASK_KEY)
    if key:  # what a rerun looks up to skip this task run (see MlflowSink.finished)
        tags[f"{TAG}task_key"] = key
    return tags


def process_tags() -> dict[str, str]:
    """Who created a run: the next sink on this host marks it KILLED if it is RUNNING and that process is gone."""
    return {f"{TAG}host": HOST, f"{TAG}pid": str(os.getpid())}


def outcome_of(document: dict[str, Any]) -> Outcome:
    """An outbox document back as an Outcome, with the installed task's metadata (its charts) when
    the same version is installed, else the metadata the document itself records."""
    from xlingbench.sinks.json_sink import from_document
    from xlingbench.tasks.registry import load_task

    task = document["task"]
    try:
        metadata = load_task(task["name"]).metadata
    except UserError:
        metadata = None
    if metadata is None or metadata.version != task["version"]:
        metadata = TaskMetadata(name=task["name"], description="", reference="", main_score=task["main_score"],
                                version=task["version"], higher_is_better=task["higher_is_better"])
    return from_document(document, metadata)


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
