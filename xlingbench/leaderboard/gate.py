"""``compare`` and ``check`` on a :class:`~xlingbench.sinks.store.ResultStore`: resolve the run
references, apply the rule of :mod:`xlingbench.leaderboard.gating`, return a report.

Why apart from the rule: the rule is pure (rows in, lines out) and tested without any store; here
the store is asked for rows (MLflow or a results folder, the same calls) and names that match
nothing are refused before anything is judged.
"""
from __future__ import annotations

import json
from pathlib import Path

from xlingbench.core.errors import UserError, did_you_mean
from xlingbench.core.outputs import write_file
from xlingbench.leaderboard.expect_file import CONFIGS, expectations_of, load_expectations, to_toml
from xlingbench.leaderboard.gating import Expectation, Report, check_line, check_patterns, compare_rows, parse_tolerances
from xlingbench.sinks.store import ResultStore, TaskRow


def compare(baseline: str, candidate: str, tolerances: list[str], store: ResultStore) -> Report:
    """Compare two run references of ``store`` (see the module docstring for the rule)."""
    patterns = parse_tolerances(tolerances)
    base = store.resolve(baseline)
    check_patterns(patterns, base)
    return Report(baseline, candidate, compare_rows(base, store.resolve(candidate), patterns))


def check(expect_file: Path, run: str, store: ResultStore) -> Report:
    """Compare a run of ``store`` with the expected values of a committed file."""
    expected, configs = load_expectations(expect_file)
    rows = store.resolve(run)
    check_metric_names(expect_file, expected, rows)
    lines = [check_line(task, metric, expect, rows.get(task), configs.get(task))
             for task, metrics in sorted(expected.items()) for metric, expect in sorted(metrics.items())]
    return Report(str(expect_file), run, lines)


def check_metric_names(path: Path, expected: dict[str, dict[str, Expectation]], rows: dict[str, TaskRow]) -> None:
    """Refuse an expected metric that the run's task did not log: a typo would otherwise read as a regression."""
    for task, metrics in sorted(expected.items()):
        row = rows.get(task)
        unknown = sorted(set(metrics) - set(row.metrics)) if row is not None else []
        if unknown:
            raise UserError(f"expect file {path}: the run's {task} logged no metric {unknown[0]!r}{did_you_mean(unknown[0], row.metrics)}.",
                            "Correct the metric's name in the expect file (or write the file with --write-expect).")


def write_expect(path: Path, run: str, store: ResultStore) -> int:
    """Write an expect file (JSON, or TOML by suffix) from a run's headlines; returns the number of tasks."""
    data = expectations_of(store.resolve(run))
    write_file(path, to_toml(data) if path.suffix == ".toml" else json.dumps(data, indent=2, sort_keys=True) + "\n")
    return len(data.get(CONFIGS, {}))
