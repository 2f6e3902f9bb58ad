"""Regression gating: compare two runs, or one run against a committed file of expected values.

Run references (RUN arguments) take five forms:

* a run id: a parent model run (all its task runs are compared) or one task run;
* the first 8 or more characters of a run id, when no other run of the store starts with them
  (``xlingbench run`` prints the first 8);
* ``@FILE``: the task runs a ``xlingbench run --json > FILE`` document names (its ``run_id``
  fields), which must all be of one model revision. This is exact: a CI job gates the runs it
  just made, never a newer run someone else logged meanwhile;
* ``MODEL@STEP``: the newest model run of that model name at that training step, in any
  experiment (``out@1000``: checkpoint 1000 of the local training run ``out``);
* a selector ``EXPERIMENT:KEY=VALUE[,KEY=VALUE...]``: the newest parent model run of
  EXPERIMENT whose tags match, e.g. ``xlingbench:model=xlm-roberta-xl,step=20000``. A key
  without a dot means the tag ``xlingbench.<key>``; a key with a dot is used as is. With a
  ``task=...`` key the selector picks the newest matching task run instead.

The rule (also in docs/leaderboard.md). For each gated metric, with ``worse_by`` the change in
the bad direction (baseline - candidate when higher is better, candidate - baseline otherwise):

1. a metric missing from the candidate is a regression ("missing"); but a name that matches
   nothing logged is a typo, refused (exit 2) before anything is judged: a ``--tolerance``
   pattern no metric of the baseline matches, or an expect-file metric the run's task did not
   log (the closest logged name is suggested). A task missing from the run still regresses;
2. if a tolerance was given explicitly for the metric (``--tolerance`` or the expect file), it
   decides: regression iff ``worse_by > tolerance``;
3. else, if the baseline logged an interval (``<metric>_ci_low`` / ``<metric>_ci_high``, or
   ``low`` / ``high`` in the expect file), it decides: regression iff the candidate lies
   outside the interval on the bad side (below low when higher is better, above high otherwise);
4. else the metric's default tolerance decides as in 2: 1.0 (one point) for a metric its task
   declares as a percentage (``TaskMetadata.units``, e.g. CALIGN's and COLAP's 0-100
   headlines), 0.01 for any other metric (a 0-1 fraction: accuracy, hit@k).

Gated metrics: each task's headline (``xlingbench.main_score``), plus every metric a
``--tolerance`` pattern names (compare) or every metric listed (check). Direction: the task's
``xlingbench.higher_is_better`` tag, or ``higher_is_better`` in the expect file. A descriptive
task (tag ``none``) has no better or worse, so its metrics are shown, never gated.

Like with like: two runs of a task are compared only when their configuration fingerprints
(tag ``xlingbench.config``: task version, parameters, data, dtype) are equal; an expect file
written by ``--write-expect`` pins each task's fingerprint (top-level table ``xlingbench.config``,
task -> fingerprint; a hand-written file without it is not pinned). When they differ the report
says so on the task's line (status "config differs") and the gate fails: it cannot vouch for a
number it could not compare.
"""
from __future__ import annotations

import dataclasses

import json
import math
import re
import tomllib
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xlingbench.core.errors import UserError, did_you_mean
from xlingbench.sinks.mlflow_sink import tag_clause
from xlingbench.core.outputs import write_file
from xlingbench.leaderboard.collect import FINISHED_ONLY, TAG, TaskRow, connect, mlflow_errors, task_row
from xlingbench.leaderboard.view import installed

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient
    from rich.console import Console

DEFAULT_TOLERANCE = 0.01
#: default tolerance by the unit a task declares for a metric (TaskMetadata.units); undeclared: a fraction
UNIT_TOLERANCES = {"fraction": DEFAULT_TOLERANCE, "percent": 1.0}
#: a run-id prefix must be at least this long (``xlingbench run`` prints 8 characters)
PREFIX_LENGTH = 8
#: ``MODEL@STEP``: a training checkpoint by its model name and step (``out@1000``)
CHECKPOINT_REF = re.compile(r"(.+)@(\d+)")
#: floating-point slack so that a drop of exactly the tolerance passes
EPSILON = 1e-12
EXPECT_KEYS = {"value", "tolerance", "low", "high", "higher_is_better"}
#: the expect file's reserved top-level table: task -> configuration fingerprint the values were measured in
CONFIGS = "xlingbench.config"
#: statuses that fail the gate (exit 1)
FAILING = ("REGRESSION", "missing", "config differs")


@dataclass(frozen=True)
class Expectation:
    """What a gated metric is compared with: a reference value and how far it may fall."""

    value: float
    tolerance: float | None = None  # explicit tolerance; None -> interval or the metric's default
    low: float | None = None
    high: float | None = None
    higher_is_better: bool | None = None  # None -> the task run's tag


@dataclass(frozen=True)
class Line:
    """One row of the printed comparison. ``status`` is empty for metrics that are only shown."""

    task: str
    metric: str
    baseline: float | None
    candidate: float | None
    rule: str = ""
    status: str = ""  # "ok" | "improved" | "REGRESSION" | "missing" | "config differs" | ""


@dataclass(frozen=True)
class Report:
    """The outcome of a comparison; ``regressed`` decides the exit code."""

    baseline: str
    candidate: str
    lines: list[Line]

    @property
    def regressed(self) -> bool:
        """Whether any gated metric regressed, went missing, or could not be compared."""
        return any(line.status in FAILING for line in self.lines)


def judge(expect: Expectation, candidate: float | None, higher_is_better: bool,
          default: float = DEFAULT_TOLERANCE) -> tuple[str, str]:
    """``(rule, status)`` for one gated metric, by the rule in this module's docstring
    (``default``: the metric's default tolerance, see :func:`default_tolerance`)."""
    if candidate is None or math.isnan(candidate):
        return "present", "missing"
    worse_by = expect.value - candidate if higher_is_better else candidate - expect.value
    if expect.tolerance is None and expect.low is not None and expect.high is not None:
        bound = expect.low if higher_is_better else expect.high
        regressed = candidate < bound if higher_is_better else candidate > bound
        rule = f"{'≥' if higher_is_better else '≤'} {bound:.4g} (interval)"
    else:
        tolerance = default if expect.tolerance is None else expect.tolerance
        regressed = worse_by > tolerance + EPSILON
        rule = f"{'drop' if higher_is_better else 'rise'} ≤ {tolerance:g}"
    if regressed:
        return rule, "REGRESSION"
    return rule, "improved" if worse_by < 0 else "ok"


# --------------------------------------------------------------------------- tolerances


def parse_tolerances(items: list[str]) -> dict[str, float]:
    """``["accuracy=0.02", "calign:calign=1"]`` -> patterns to tolerances (UserError if malformed)."""
    parsed: dict[str, float] = {}
    for item in items:
        pattern, sep, number = item.rpartition("=")
        try:
            value = float(number)
        except ValueError:
            value = math.nan
        if not sep or not pattern or not value >= 0:
            raise UserError(
                f"bad --tolerance {item!r}.",
                "Write METRIC=NUMBER or TASK:METRIC=NUMBER (globs allowed), e.g. --tolerance 'accuracy/*=0.02'.",
            )
        parsed[pattern] = value
    return parsed


def tolerance_for(task: str, metric: str, patterns: dict[str, float]) -> float | None:
    """The explicit tolerance of a metric: a ``TASK:METRIC`` pattern beats a ``METRIC`` pattern; last given wins."""
    qualified = [v for p, v in patterns.items() if ":" in p and fnmatchcase(f"{task}:{metric}", p)]
    plain = [v for p, v in patterns.items() if ":" not in p and fnmatchcase(metric, p)]
    return (qualified or plain or [None])[-1]


def default_tolerance(task: str, metric: str) -> float:
    """The tolerance of a metric no pattern, file entry or interval decides: by the unit its
    installed task declares, so a 0-100 percentage is not held to a fraction's 0.01."""
    meta = installed(task)
    unit = meta.units.get(metric, "fraction") if meta is not None else "fraction"
    return UNIT_TOLERANCES.get(unit, DEFAULT_TOLERANCE)


# --------------------------------------------------------------------------- run references


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
        rows = [task_row(require_finished(get_run(client, run_id), run_id), uri) for run_id in run_ids_of(path)]
    revisions = sorted({f"{row.model}@{row.revision[:12]}" for row in rows})
    if len(revisions) > 1:
        raise UserError(f"{path} holds runs of {len(revisions)} model revisions ({', '.join(revisions)}).",
                        "Gate one model revision per file: run one --model and --revision per `xlingbench run --json`.")
    return {row.task: row for row in rows}


def run_ids_of(path: Path) -> list[str]:
    """The MLflow run ids of a ``xlingbench run --json`` document (``{"outcomes": [{"run_id": ...}]}``)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise UserError(f"cannot read {path}: {err.strerror}.", "Write it with `xlingbench run --json > FILE`, then pass --run @FILE.") from err
    except ValueError as err:
        raise UserError(f"{path} is not JSON: {err}.", "Pass the stdout of `xlingbench run --json` (its progress goes to stderr).") from err
    outcomes = data.get("outcomes") if isinstance(data, dict) else None
    if not isinstance(outcomes, list) or not all(isinstance(o, dict) for o in outcomes):
        raise UserError(f"{path} is not a `xlingbench run --json` document.", 'It must hold {"outcomes": [{"run_id": ...}, ...]}.')
    ids = [o.get("run_id") for o in outcomes]
    if not ids or not all(isinstance(i, str) and i for i in ids):
        raise UserError(f"{path} names no MLflow run for {'some' if ids else 'any'} outcome.",
                        "Run with the mlflow sink (the default) so that each outcome has a run_id.")
    return ids


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


# --------------------------------------------------------------------------- compare / check


def config_differs(task: str, metric: str, baseline: float | None, candidate: float | None, base: str, cand: str) -> Line:
    """The report's line for a task whose two runs ran in different configurations: not compared."""
    rule = f"configuration {base[:12] or 'unknown'} vs {cand[:12] or 'unknown'}: not compared"
    return Line(task, metric, baseline, candidate, rule, "config differs")


def compare_rows(baseline: dict[str, TaskRow], candidate: dict[str, TaskRow], patterns: dict[str, float]) -> list[Line]:
    """Every metric of every task of the baseline, gated where it is a headline or has a tolerance,
    when both runs of the task share a configuration (else one line says they cannot be compared)."""
    lines: list[Line] = []
    for task, base in sorted(baseline.items()):
        cand = candidate.get(task)
        if cand is None:
            lines.append(Line(task, base.main_score, base.value, None, "task run present", "missing"))
            continue
        if cand.config != base.config:
            lines.append(config_differs(task, base.main_score, base.value, cand.value, base.config, cand.config))
            continue
        for metric in sorted(set(base.metrics) | set(cand.metrics)):
            value, new = base.metrics.get(metric), cand.metrics.get(metric)
            tolerance = tolerance_for(task, metric, patterns)
            if value is None or base.higher_is_better is None or (metric != base.main_score and tolerance is None):
                lines.append(Line(task, metric, value, new, "descriptive" if base.higher_is_better is None else ""))
                continue
            low, high = base.metrics.get(f"{metric}_ci_low"), base.metrics.get(f"{metric}_ci_high")
            rule, status = judge(Expectation(value, tolerance, low, high), new, base.higher_is_better, default_tolerance(task, metric))
            lines.append(Line(task, metric, value, new, rule, status))
    return lines


def compare(baseline: str, candidate: str, tolerances: list[str], tracking_uri: str | None = None) -> Report:
    """Compare two run references (see the module docstring for the syntax and the rule)."""
    patterns = parse_tolerances(tolerances)
    client, uri = connect(tracking_uri)
    base = resolve(client, uri, baseline)
    check_patterns(patterns, base)
    return Report(baseline, candidate, compare_rows(base, resolve(client, uri, candidate), patterns))


def check_patterns(patterns: dict[str, float], rows: dict[str, TaskRow]) -> None:
    """Refuse a ``--tolerance`` pattern that matches no metric of the baseline: it would gate nothing."""
    logged = [(task, metric) for task, row in rows.items() for metric in row.metrics]
    for pattern in patterns:
        if not any(fnmatchcase(f"{task}:{metric}" if ":" in pattern else metric, pattern) for task, metric in logged):
            names = sorted({metric for _, metric in logged})
            raise UserError(f"--tolerance {pattern}: no metric of the baseline matches {pattern!r}{did_you_mean(pattern, names)}.",
                            "Name a logged metric (the compare table lists them), e.g. accuracy, 'accuracy/*' or calign:calign_max.")


def check_metric_names(path: Path, expected: dict[str, dict[str, Expectation]], rows: dict[str, TaskRow]) -> None:
    """Refuse an expected metric that the run's task did not log: a typo would otherwise read as a regression."""
    for task, metrics in sorted(expected.items()):
        row = rows.get(task)
        unknown = sorted(set(metrics) - set(row.metrics)) if row is not None else []
        if unknown:
            raise UserError(f"expect file {path}: the run's {task} logged no metric {unknown[0]!r}{did_you_mean(unknown[0], row.metrics)}.",
                            "Correct the metric's name in the expect file (or write the file with --write-expect).")


def load_expectations(path: Path) -> tuple[dict[str, dict[str, Expectation]], dict[str, str]]:
    """Read and validate an expect file (JSON, or TOML by the ``.toml`` suffix): the expected
    values, and the configuration each task's values were measured in (where pinned)."""
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except OSError as err:
        raise UserError(f"cannot read expect file {path}: {err.strerror}.", "Pass an existing file to --expect.") from err
    except (ValueError, tomllib.TOMLDecodeError) as err:
        raise UserError(f"expect file {path} is not valid {'TOML' if path.suffix == '.toml' else 'JSON'}: {err}.",
                        "See docs/leaderboard.md for the format, or write one with --write-expect.") from err
    configs = data.pop(CONFIGS, {}) if isinstance(data, dict) else {}
    if not isinstance(data, dict) or not data:
        raise UserError(f"expect file {path} must map task names to metrics.", 'e.g. {"script_separability": {"accuracy": 0.95}}')
    if not isinstance(configs, dict) or not all(isinstance(v, str) for v in configs.values()):
        raise UserError(f"expect file {path}: {CONFIGS} must map task names to fingerprints (strings).",
                        "Copy them from the runs' xlingbench.config tags, or write the file with --write-expect.")
    expected = {task: {m: _expectation(path, task, m, e) for m, e in _table(path, task, metrics).items()} for task, metrics in data.items()}
    return expected, configs


def _table(path: Path, task: str, metrics: Any) -> dict[str, Any]:
    """A task's entry must be a non-empty table of metrics."""
    if not isinstance(metrics, dict) or not metrics:
        raise UserError(f"expect file {path}: {task!r} must map metric names to values.", 'e.g. {"accuracy": {"value": 0.95}}')
    return metrics


def _expectation(path: Path, task: str, metric: str, entry: Any) -> Expectation:
    """A bare number, or a table with ``value`` and optional tolerance/low/high/higher_is_better."""
    where = f"expect file {path}: {task}.{metric}"
    entry = {"value": entry} if _is_number(entry) else entry
    if not isinstance(entry, dict) or not _is_number(entry.get("value")) or set(entry) - EXPECT_KEYS:
        raise UserError(f"{where} is malformed.", f"Write a number or a table with keys from {sorted(EXPECT_KEYS)} ('value' required).")
    numbers = {k: entry.get(k) for k in ("tolerance", "low", "high")}
    if any(v is not None and not _is_number(v) for v in numbers.values()):
        raise UserError(f"{where}: tolerance, low and high must be numbers.", "Remove the quotes around them.")
    if ("low" in entry) != ("high" in entry):
        raise UserError(f"{where}: give both low and high, or neither.", "They are the interval the value may move in.")
    direction = entry.get("higher_is_better")
    if direction is not None and not isinstance(direction, bool):
        raise UserError(f"{where}: higher_is_better must be true or false.", "")
    return Expectation(float(entry["value"]), numbers["tolerance"], numbers["low"], numbers["high"], direction)


def _is_number(value: Any) -> bool:
    """An int or float, not a bool (JSON true must not pass as 1)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check(expect_file: Path, run: str, tracking_uri: str | None = None) -> Report:
    """Compare a run with the expected values of a committed file."""
    expected, configs = load_expectations(expect_file)
    client, uri = connect(tracking_uri)
    rows = resolve(client, uri, run)
    check_metric_names(expect_file, expected, rows)
    lines = [check_line(task, metric, expect, rows.get(task), configs.get(task))
             for task, metrics in sorted(expected.items()) for metric, expect in sorted(metrics.items())]
    return Report(str(expect_file), run, lines)


def check_line(task: str, metric: str, expect: Expectation, row: TaskRow | None, config: str | None) -> Line:
    """One expected metric against the run: not compared when the pinned configuration differs,
    shown only when no direction is known (a descriptive task, none given in the file)."""
    value = row.metrics.get(metric) if row else None
    if row is not None and config is not None and config != row.config:
        return config_differs(task, metric, expect.value, value, config, row.config)
    higher = expect.higher_is_better if expect.higher_is_better is not None else (row.higher_is_better if row else True)
    if higher is None:
        return Line(task, metric, expect.value, value, "descriptive: give higher_is_better to gate")
    rule, status = judge(expect, value, higher, default_tolerance(task, metric))
    return Line(task, metric, expect.value, value, rule, status)


def expectations_of(rows: dict[str, TaskRow]) -> dict[str, dict[str, Any]]:
    """The headline of each task run as an expect-file entry (its interval where logged, else its
    unit's default tolerance, written out so the file says what it gates with), and each
    task's configuration under :data:`CONFIGS`; descriptive headlines are left out (never gated)."""
    out: dict[str, dict[str, Any]] = {}
    for task, row in sorted(rows.items()):
        if row.value is None or row.higher_is_better is None:
            continue
        out.setdefault(CONFIGS, {})[task] = row.config
        entry: dict[str, Any] = {"value": row.value, "higher_is_better": row.higher_is_better}
        low, high = row.metrics.get(f"{row.main_score}_ci_low"), row.metrics.get(f"{row.main_score}_ci_high")
        if low is not None and high is not None:
            entry.update(low=low, high=high)
        else:
            entry["tolerance"] = default_tolerance(task, row.main_score)
        out[task] = {row.main_score: entry}
    return out


def write_expect(path: Path, run: str, tracking_uri: str | None = None) -> int:
    """Write an expect file (JSON, or TOML by suffix) from a run's headlines; returns the number of tasks."""
    client, uri = connect(tracking_uri)
    data = expectations_of(resolve(client, uri, run))
    write_file(path, to_toml(data) if path.suffix == ".toml" else json.dumps(data, indent=2, sort_keys=True) + "\n")
    return len(data.get(CONFIGS, {}))


def to_toml(data: dict[str, dict[str, Any]]) -> str:
    """The expect structure as TOML (keys quoted: metric names contain '/'): a table of plain
    values (the configurations) or of tables (a task's metrics) per top-level key."""
    blocks = []
    for name, table in data.items():
        plain = {k: v for k, v in table.items() if not isinstance(v, dict)}
        if plain:
            blocks.append(f"[{json.dumps(name)}]\n{_toml_body(plain)}\n")
        blocks += [f"[{json.dumps(name)}.{json.dumps(key)}]\n{_toml_body(entry)}\n" for key, entry in table.items() if isinstance(entry, dict)]
    return "\n".join(blocks)


def _toml_body(entry: dict[str, Any]) -> str:
    """``key = value`` lines (JSON scalars are valid TOML for strings, numbers and booleans)."""
    return "\n".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in sorted(entry.items()))


#: the order a reader needs: what failed, then what was gated, then what is only shown
_STATUS_ORDER = {**dict.fromkeys(FAILING, 0), "improved": 1, "ok": 1, "": 2}


def ordered_lines(report: Report, timings: bool = False) -> list[Line]:
    """The report's lines, failures first, then gated metrics, then the rest; phase timings
    (``time_*``) only when asked for: a CI reader must see the regression in the first lines."""
    shown = [line for line in report.lines if timings or not line.metric.startswith("time_")]
    return sorted(shown, key=lambda line: _STATUS_ORDER[line.status])


def report_document(report: Report) -> dict[str, Any]:
    """The comparison as one JSON document (``compare --json``, ``check --json``)."""
    return {"baseline": report.baseline, "candidate": report.candidate, "regressed": report.regressed,
            "lines": [dataclasses.asdict(line) for line in ordered_lines(report, timings=True)]}


def print_report(report: Report, console: Console, timings: bool = False) -> None:
    """The comparison as a rich table, failures first, and a one-line verdict at the end."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(f"baseline {report.baseline}  vs  candidate {report.candidate}"))
    for name in ("task", "metric", "baseline", "candidate", "change", "rule", "status"):
        table.add_column(name, justify="right" if name in ("baseline", "candidate", "change") else "left")
    styles = {"REGRESSION": "bold red", "missing": "bold red", "config differs": "bold red", "improved": "green", "ok": "green"}
    for line in ordered_lines(report, timings):
        change = "" if line.baseline is None or line.candidate is None else f"{line.candidate - line.baseline:+.4g}"
        table.add_row(escape(line.task), escape(line.metric), _num(line.baseline), _num(line.candidate), change, line.rule,
                      f"[{styles[line.status]}]{line.status}[/]" if line.status else "")
    console.print(table)
    console.print(verdict(report))


def verdict(report: Report) -> str:
    """One line a CI log ends with: what regressed, what could not be compared, or ok."""
    from rich.markup import escape

    bad = [f"{line.task}/{line.metric}" for line in report.lines if line.status in ("REGRESSION", "missing")]
    differs = list(dict.fromkeys(line.task for line in report.lines if line.status == "config differs"))
    gated = sum(1 for line in report.lines if line.status)
    parts = []
    if differs:
        parts.append(f"[bold red]cannot compare[/] {escape(', '.join(differs))}: the runs' configurations "
                     "(xlingbench.config) differ, so their numbers are not comparable")
    if bad:
        parts.append(f"[bold red]REGRESSION[/] in {escape(', '.join(bad))}")
    return "; ".join(parts) if parts else f"[green]ok[/]: {gated} gated metric(s), no regression"


def _num(value: float | None) -> str:
    """A table cell for a number."""
    return "" if value is None else f"{value:.4g}"
