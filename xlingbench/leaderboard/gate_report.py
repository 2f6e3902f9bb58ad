"""A gate's report for people (a rich table, failures first, and a one-line verdict) and for programs (JSON).

Why apart from the rule: what a CI log shows, and in which order, changes without touching what
regresses.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from xlingbench.leaderboard.gating import FAILING, Line, Report

if TYPE_CHECKING:
    from rich.console import Console


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
