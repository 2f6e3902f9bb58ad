"""The ``watch`` command: evaluate each new checkpoint of a training run folder as it appears.

Added to the xlingbench CLI by :func:`register`. The loop is :mod:`xlingbench.training.watch`;
this module parses options and prints a line per finished task, like ``run``.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from xlingbench.cli.output import console, done_line
from xlingbench.sinks.mlflow_sink import DEFAULT_EXPERIMENT

if TYPE_CHECKING:
    from xlingbench.harness.grid import GridResult


def watch(
    folder: Annotated[Path, typer.Argument(help="The training run's output folder, where checkpoint-<step> (step_<step>, step<step>, global_step<step>, iter_<step>) folders appear.", show_default=False)],
    task: Annotated[Optional[list[str]], typer.Option("--task", "-t", help="Task name. Repeatable. Default: the three tasks that read only the embedding matrix (seconds per checkpoint).")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="The trajectory's model name. Default: the folder's name.")] = None,
    until_step: Annotated[Optional[int], typer.Option("--until-step", help="Stop once a checkpoint of this step or later is evaluated. Default: watch until interrupted (Ctrl-C).")] = None,
    interval: Annotated[float, typer.Option(help="Seconds between looks at the folder.")] = 10.0,
    settle: Annotated[float, typer.Option(help="Seconds a checkpoint's files must stay unchanged before it is read.")] = 5.0,
    data: Annotated[Optional[str], typer.Option(help="Parallel text for tasks 4-5, as for `xlingbench run`.")] = None,
    languages: Annotated[Optional[str], typer.Option(help="Languages for tasks 4-5, as for `xlingbench run`.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed for every task.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="A task parameter, name=value or task.name=value. Repeatable.")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1 ... or auto.")] = "cpu",
    tracking_uri: Annotated[Optional[str], typer.Option(envvar="MLFLOW_TRACKING_URI", help="MLflow tracking URI. Default: sqlite:///mlflow.db in this folder.")] = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment name.")] = DEFAULT_EXPERIMENT,
    cache_dir: Annotated[Optional[Path], typer.Option(envvar="XLINGBENCH_CACHE", help="Where embeddings and word vectors are cached.")] = None,
    sink: Annotated[Optional[list[str]], typer.Option("--sink", help="Where results go: mlflow (default), json, or an installed plugin sink. Repeatable.")] = None,
    results_dir: Annotated[Path, typer.Option(help="Folder of the json sink.")] = Path("results"),
) -> None:
    """Evaluate each checkpoint of a training run as it appears (once its files stop changing).

    Resumable: checkpoints already in the store are skipped. Results land as with
    `xlingbench run -m FOLDER --checkpoints`: one trajectory, one row per step.

    Example: xlingbench watch ./out --until-step 5000
    """
    from xlingbench.training.evaluation import CHEAP_TASKS, Evaluation
    from xlingbench.training.watch import WatchSettings
    from xlingbench.training.watch import watch as watch_folder

    options = {"data": data, "languages": languages, "seed": seed}
    evaluation = Evaluation(tasks=tuple(task or CHEAP_TASKS), name=name, options={k: v for k, v in options.items() if v is not None},
                            overrides=tuple(set_ or ()), device=device, cache_dir=None if cache_dir is None else str(cache_dir),
                            tracking_uri=tracking_uri, experiment=experiment, sinks=tuple(sink or ("mlflow",)),
                            results_dir=str(results_dir))
    out = console()

    def said(checkpoint: Path, result: "GridResult") -> None:
        if result.skipped:
            out.print(f"skipped {checkpoint.name}: its {len(result.skipped)} task runs are already in the store",
                      markup=False, highlight=False, soft_wrap=True)
        for failure in result.failed:
            out.print(f"failed {checkpoint.name}: {failure.reason}", markup=False, highlight=False, soft_wrap=True)

    out.print(f"watching {folder} (every {interval:g} s; Ctrl-C stops)", markup=False, highlight=False, soft_wrap=True)
    watch_folder(folder, evaluation, WatchSettings(interval, settle, until_step),
                 report=lambda outcome: out.print(done_line(outcome), soft_wrap=True), on_result=said)


class _WarningLines(logging.Handler):
    """Each warning of the checkpoint discovery (a half-written checkpoint skipped) as one line on
    stderr, wherever stderr is at that moment."""

    def emit(self, record: logging.LogRecord) -> None:
        console(stderr=True).print(f"warning {record.getMessage()}", markup=False, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add the watch command to the xlingbench app, and show the discovery's warnings on stderr."""
    from xlingbench.inputs.checkpoints import LOG

    app.command("watch")(watch)
    if not any(isinstance(handler, _WarningLines) for handler in LOG.handlers):
        LOG.addHandler(_WarningLines(logging.WARNING))
