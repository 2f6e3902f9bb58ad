"""Regression gating: compare two runs, or one run against a committed file of expected values.

The runs come from a :class:`~xlingbench.sinks.store.ResultStore`: the MLflow store
(:mod:`xlingbench.leaderboard.mlflow_store`) or a JSON results folder
(:mod:`xlingbench.sinks.json_store`, whose own reference forms are listed there). In the MLflow
store, run references (RUN arguments) take five forms:

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

import math
from dataclasses import dataclass
from fnmatch import fnmatchcase

from xlingbench.core.errors import UserError, did_you_mean
from xlingbench.leaderboard.view import installed
from xlingbench.sinks.store import TaskRow

DEFAULT_TOLERANCE = 0.01
#: default tolerance by the unit a task declares for a metric (TaskMetadata.units); undeclared: a fraction
UNIT_TOLERANCES = {"fraction": DEFAULT_TOLERANCE, "percent": 1.0}
#: floating-point slack so that a drop of exactly the tolerance passes
EPSILON = 1e-12
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


def require_finite(where: str, metric: str, *values: float | None) -> None:
    """A UserError when a value a gate judges by is NaN or infinite: a comparison with NaN is always
    false, so it would pass any candidate (``where`` names the file or run, ``metric`` the key)."""
    bad = next((v for v in values if v is not None and not math.isfinite(v)), None)
    if bad is not None:
        raise UserError(f"{where}: {metric} is {bad}, which no gate can compare with.",
                        "Give a finite number (rerun the baseline if it logged NaN).")


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
        if not sep or not pattern or not 0 <= value < math.inf:  # NaN and infinity would pass anything
            raise UserError(
                f"bad --tolerance {item!r}.",
                "Write METRIC=NUMBER or TASK:METRIC=NUMBER (a finite number, globs allowed), e.g. --tolerance 'accuracy/*=0.02'.",
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


# --------------------------------------------------------------------------- lines


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
            require_finite(f"the baseline's {task} run ({base.run_id})", metric, value, low, high)
            rule, status = judge(Expectation(value, tolerance, low, high), new, base.higher_is_better, default_tolerance(task, metric))
            lines.append(Line(task, metric, value, new, rule, status))
    return lines


def check_patterns(patterns: dict[str, float], rows: dict[str, TaskRow]) -> None:
    """Refuse a ``--tolerance`` pattern that matches no metric of the baseline: it would gate nothing."""
    logged = [(task, metric) for task, row in rows.items() for metric in row.metrics]
    for pattern in patterns:
        if not any(fnmatchcase(f"{task}:{metric}" if ":" in pattern else metric, pattern) for task, metric in logged):
            names = sorted({metric for _, metric in logged})
            raise UserError(f"--tolerance {pattern}: no metric of the baseline matches {pattern!r}{did_you_mean(pattern, names)}.",
                            "Name a logged metric (the compare table lists them), e.g. accuracy, 'accuracy/*' or calign:calign_max.")


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
