"""The ``leaderboard``, ``compare`` and ``check`` commands, added to the xlingbench CLI by :func:`register`.

mlflow is imported inside the commands only, so ``xlingbench --help`` stays fast.
Exit codes: 0 ok, 1 regression, 2 user error (printed as one line, no traceback).
"""
from __future__ import annotations

import dataclasses
import json
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from xlingbench.cli.output import console
from xlingbench.core.outputs import check_folder, replace_outputs, write_file
from xlingbench.sinks.mlflow_sink import public_uri

if TYPE_CHECKING:
    from xlingbench.leaderboard.gating import Report


TRACKING_HELP = "MLflow tracking URI: http(s)://host:port of a server, or sqlite:///path.db. Default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db."
RUN_HELP = ("A run id (parent model run or task run) or its first 8+ characters; @FILE: the runs of a `xlingbench run --json > FILE` "
            "document (exact: what that command logged); or a selector EXPERIMENT:KEY=VALUE[,KEY=VALUE] (the newest match), "
            "e.g. xlingbench:model=xlm-roberta-xl,step=2000.")

RESULTS_HELP = ("A JSON results folder (written by `xlingbench run --sink json`) to read instead of MLflow; run references are then "
                "a file or MODEL/REVISION folder under it, @FILE, or KEY=VALUE over model, revision, step, task.")

TrackingUri = Annotated[str | None, typer.Option("--tracking-uri", help=TRACKING_HELP, show_default=False)]
ResultsDir = Annotated[Path | None, typer.Option("--results-dir", help=RESULTS_HELP, show_default=False)]


class Format(str, Enum):
    """Output formats of the leaderboard command."""

    html = "html"
    markdown = "markdown"
    json = "json"


def leaderboard(
    tracking_uri: TrackingUri = None,
    experiment: Annotated[list[str], typer.Option("--experiment", "-e", help="Experiment to read; repeat for several. Default: xlingbench.")] = [],  # noqa: B006 - typer needs a list default
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write to: new, empty, or written by xlingbench before (only its own files are replaced). Markdown: OUT/leaderboard.md, or a file ending in .md, or '-' for stdout.")] = Path("leaderboard-site"),
    fmt: Annotated[Format, typer.Option("--format", "-f", help="html: a static site (index.html + one page per model). markdown: the models x tasks table, e.g. for $GITHUB_STEP_SUMMARY. json: every task run the board reads, on stdout.")] = Format.html,
    results_dir: ResultsDir = None,
) -> None:
    """Build the leaderboard of every model and task logged to MLflow.

    Example: xlingbench leaderboard --tracking-uri http://mlflow:5000 --out site/ Example: xlingbench leaderboard -f markdown -o - >> "$GITHUB_STEP_SUMMARY" Example: xlingbench leaderboard --results-dir results/ --out site/
    """
    from xlingbench.leaderboard.collect import board_of
    from xlingbench.leaderboard.render import render_markdown, write_site
    from xlingbench.leaderboard.stores import open_store

    to_stdout = fmt is Format.json or (fmt is Format.markdown and str(out) == "-")
    if not to_stdout and not (fmt is Format.markdown and out.suffix == ".md"):
        check_folder(out, "leaderboard")  # before reading MLflow: a folder of the user's is refused at once
    board = board_of(open_store(tracking_uri, results_dir, experiment))
    if fmt is Format.json:
        rows = [dataclasses.asdict(row) for row in board.rows]
        typer.echo(json.dumps({"tracking_uri": public_uri(board.tracking_uri), "experiments": board.experiments,
                               "rows": rows}, indent=1, default=str))
        return
    if fmt is Format.markdown:
        text = render_markdown(board)
        if to_stdout:
            typer.echo(text, nl=False)
        elif out.suffix == ".md":
            write_file(out, text)
            typer.echo(f"wrote {out}")
        else:
            replace_outputs(out, "leaderboard --format markdown", {Path("leaderboard.md"): text})
            typer.echo(f"wrote {out / 'leaderboard.md'}")
        return
    index = write_site(board, out)
    typer.echo(f"wrote {index} ({len(board.rows)} task runs)")


def compare(
    baseline: Annotated[str, typer.Argument(help="The reference. " + RUN_HELP, show_default=False)],
    candidate: Annotated[str, typer.Argument(help="The run to judge. Same forms as BASELINE.", show_default=False)],
    tracking_uri: TrackingUri = None,
    tolerance: Annotated[list[str], typer.Option("--tolerance", help="METRIC=NUMBER or TASK:METRIC=NUMBER (globs allowed): the largest acceptable drop of that metric, absolute. Gates the metric even if it is not a headline; overrides a logged interval. Repeatable.")] = [],  # noqa: B006
    timings: Annotated[bool, typer.Option("--timings", metavar="", help="Also list the phase timings (time_*_s).")] = False,
    json_: Annotated[bool, typer.Option("--json", metavar="", help="Print the comparison as one JSON document instead of a table.")] = False,
    results_dir: ResultsDir = None,
) -> None:
    """Compare every metric of two runs; exit 1 if a gated metric regressed.

    Gated: each task's headline metric, and metrics named by --tolerance. A metric regresses when it moves the bad way by more than its tolerance (default by the metric's unit: 1 point for a percentage such as calign_max, 0.01 for a fraction such as accuracy), or, when the baseline logged an interval (<metric>_ci_low/_ci_high) and no --tolerance names it, when the candidate falls outside that interval on the bad side. A missing task or metric regresses.

    Example: xlingbench compare @baseline.json @candidate.json --tolerance 'accuracy/*=0.02'
    """
    from xlingbench.leaderboard.gate import compare as run_compare
    from xlingbench.leaderboard.stores import open_store

    _report(run_compare(baseline, candidate, tolerance, open_store(tracking_uri, results_dir)), json_, timings)


def check(
    expect: Annotated[Path, typer.Option("--expect", help="JSON (or .toml) file of expected values: {TASK: {METRIC: NUMBER or {value, tolerance, low, high, higher_is_better}}}.", show_default=False)],
    run: Annotated[str, typer.Option("--run", help=RUN_HELP, show_default=False)],
    tracking_uri: TrackingUri = None,
    write_expect: Annotated[bool, typer.Option("--write-expect", metavar="", help="Instead of checking, write --expect from the run's headline metrics (with their interval, else their unit's tolerance: 1 point for a percentage, 0.01 for a fraction).")] = False,
    json_: Annotated[bool, typer.Option("--json", metavar="", help="Print the check as one JSON document instead of a table.")] = False,
    results_dir: ResultsDir = None,
) -> None:
    """Check a run against a committed file of expected values; exit 1 on a regression.

    Same rule as compare, with the file's values as the baseline; an entry's own tolerance beats its interval (low/high), which beats the metric's default tolerance (by its unit).

    Example: xlingbench run --json > run.json && xlingbench check --expect expected.json --run @run.json
    """
    from xlingbench.leaderboard.gate import check as run_check
    from xlingbench.leaderboard.gate import write_expect as write
    from xlingbench.leaderboard.stores import open_store

    store = open_store(tracking_uri, results_dir)
    if write_expect:
        count = write(expect, run, store)
        typer.echo(f"wrote {expect} ({count} task headlines)")
        return
    _report(run_check(expect, run, store), json_, timings=False)


def _report(report: "Report", json_: bool, timings: bool) -> None:
    """Print a comparison (table and verdict, or JSON); exit 1 when it regressed."""
    from xlingbench.leaderboard.gate_report import print_report, report_document

    if json_:
        typer.echo(json.dumps(report_document(report), indent=1, allow_nan=False, default=str))
    else:
        print_report(report, console(), timings)
    if report.regressed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the leaderboard, compare and check commands to the xlingbench app."""
    app.command("leaderboard")(leaderboard)
    app.command("compare")(compare)
    app.command("check")(check)
