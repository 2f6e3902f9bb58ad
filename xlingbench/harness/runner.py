"""Plan a run (models x revisions x tasks), run it, and hand every result to the sinks.

Why a separate module: the CLI and the Python API only say what to run; this is where the
request is checked as a whole before any model loads (models, revisions, tasks, options,
typed parameters, sinks) into a :class:`~xlingbench.harness.plan.Plan`, which the grid runs
unit by unit (:mod:`xlingbench.harness.unit`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from xlingbench.core import params as typed
from xlingbench.core.errors import UserError
from xlingbench.core.task import Outcome, Task
from xlingbench.harness.grid import GridResult, GridSettings, check_settings, run_grid
from xlingbench.harness.plan import Plan, Unit
from xlingbench.inputs.cache import Cache
from xlingbench.inputs.checkpoints import checkpoint_specs, is_run_folder
from xlingbench.inputs.registry import ModelSpec, resolve_model
from xlingbench.inputs.sources import check_dtype
from xlingbench.sinks import DEFAULT_SINKS, Sink, SinkSettings, open_sinks
from xlingbench.tasks.registry import load_task

#: run-wide options (``--labels``, ``--dictionary``, ...); each reaches the tasks that declare it
OPTIONS = ("labels", "dictionary", "data", "languages", "seed")


@dataclass
class RunRequest:
    """What the user asked for: models x revisions x tasks, with options, parameters and sinks."""

    models: list[str]
    tasks: list[str]
    revisions: list[str] = field(default_factory=list)
    checkpoints: bool = False
    #: the model name of a local training run folder run with ``checkpoints`` (default: the folder's name)
    name: str | None = None
    #: run-wide options by name (None: not given)
    options: dict[str, Any] = field(default_factory=dict)
    #: ``--set`` texts, ``name=value`` (every task that has it) or ``task.name=value``
    overrides: list[str] = field(default_factory=list)
    #: typed values per task (the Python API): {"calign": {"k": 300}}
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    device: str = "auto"
    #: the weights' dtype: auto (the checkpoint's own), float32, bfloat16 or float16
    dtype: str = "auto"
    cache_dir: Path | None = None  # None: inputs.cache.default_cache_dir()
    sinks: list[str] = field(default_factory=lambda: list(DEFAULT_SINKS))
    sink_settings: SinkSettings = field(default_factory=SinkSettings)
    #: executor, Ray cluster, concurrency, and whether task runs already in the sinks run again
    grid: GridSettings = field(default_factory=GridSettings)
    #: what the run records of how it was asked for (a run file's name and digest), in every model's provenance
    record: dict[str, str] = field(default_factory=dict)


def plan(request: RunRequest) -> Plan:
    """Check the whole request and resolve it; loads no model, logs nothing (a bad value is one UserError)."""
    check_dtype(request.dtype)
    tasks = [load_task(name) for name in dict.fromkeys(request.tasks)]
    check_options(tasks, request.options)
    check_overrides(tasks, request.overrides)
    unknown = sorted(set(request.params) - {t.metadata.name for t in tasks})
    if unknown:
        raise UserError(f"parameters were given for '{unknown[0]}', which is not among the tasks of this run.",
                        "Add the task, or drop its parameters.")
    params = {t.metadata.name: typed.build(t.metadata.name, t.params, task_values(t, request)) for t in tasks}
    units = [unit for spec in map(resolve_model, request.models) for unit in model_units(spec, request)]
    return Plan(units, tasks, params, resolve_device(request.device), Cache(request.cache_dir), request.dtype,
                dict(request.record))


def run(request: RunRequest, report: Callable[[Outcome], None] = lambda o: None,
        sinks: dict[str, Sink] | None = None) -> GridResult:
    """Run every requested task on every requested model revision; hand each result to the sinks.

    ``sinks`` replaces the request's named sinks (the Python API passes instances). Task runs
    every sink already holds are skipped unless ``request.grid.rerun``; a unit that fails is
    recorded in the result and the others go on (see :mod:`xlingbench.harness.grid`).
    """
    checked = plan(request)
    check_settings(request.grid)
    settings = dataclasses.replace(request.sink_settings, cache_dir=request.cache_dir)  # one cache folder, the run's
    sinks = open_sinks(request.sinks, settings) if sinks is None else sinks
    return run_grid(checked, sinks, request.grid, report)


def check_options(tasks: list[Task], options: dict[str, Any]) -> None:
    """Refuse a run-wide option that no task of the run takes (it would be ignored silently)."""
    for name, value in options.items():
        if value is None:
            continue
        if name not in OPTIONS:
            raise UserError(f"'{name}' is not a run-wide option.", f"Use one of: {', '.join(OPTIONS)}, or --set TASK.{name}=VALUE.")
        takers = [t.metadata.name for t in tasks if name in t.metadata.options]
        if not takers:
            raise UserError(f"--{name} is taken by none of the tasks of this run ({', '.join(t.metadata.name for t in tasks)}).",
                            f"Set a task's own parameter instead: --set TASK.{name}=VALUE (see `xlingbench tasks --params`).")


def task_values(task: Task, request: RunRequest) -> dict[str, Any]:
    """The values given for ``task``: options it declares, then ``--set``, then typed API values."""
    values = {k: v for k, v in request.options.items() if v is not None and k in task.metadata.options}
    fields = {f.name for f in dataclasses.fields(task.params)}
    for text in request.overrides:
        scope, name, raw = _split_override(text)
        if (not scope or scope == task.metadata.name) and name in fields:
            values[name] = raw
    values.update(request.params.get(task.metadata.name, {}))
    return values


def check_overrides(tasks: list[Task], overrides: list[str]) -> None:
    """Refuse a ``--set`` that no requested task takes, before anything loads (a typo must not pass silently)."""
    fields = {t.metadata.name: {f.name for f in dataclasses.fields(t.params)} for t in tasks}
    for text in overrides:
        scope, name, _ = _split_override(text)
        if scope and scope not in fields:
            raise UserError(f"--set {text}: '{scope}' is not among the tasks of this run.",
                            f"Use one of: {', '.join(fields)}.")
        if scope and name not in fields[scope]:
            raise UserError(f"--set {text}: task '{scope}' has no parameter '{name}'.",
                            f"Its parameters are: {', '.join(sorted(fields[scope]))}.")
        if not any(name in names for names in fields.values()):
            raise UserError(f"--set {text}: no task of this run has a parameter '{name}'.",
                            "Run `xlingbench tasks --params` to see each task's parameters.")


def _split_override(text: str) -> tuple[str, str, str]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise UserError(f"--set '{text}' is not of the form name=value.", "Write e.g. --set seed=7 or --set calign.k=300.")
    scope, _, name = key.rpartition(".")
    return scope, name, raw


def model_units(spec: ModelSpec, request: RunRequest) -> list[Unit]:
    """The units of one model: a local training run folder with ``checkpoints`` is one unit per
    checkpoint folder, all of one model (:mod:`xlingbench.inputs.checkpoints`); else its revisions."""
    if request.checkpoints and is_run_folder(spec):
        if request.revisions:
            raise UserError(f"{spec.name} is a training run folder: its checkpoints are its revisions, --revision cannot choose one.",
                            "Drop --revision, or pass one checkpoint folder: -m RUN/checkpoint-STEP --checkpoints.")
        return [Unit(checkpoint, None, step) for checkpoint, step in checkpoint_specs(spec, request.name)]
    if request.name is not None:
        raise UserError(f"--name {request.name}: it names a training run folder run with --checkpoints, and {spec.name} is not one.",
                        "Drop --name, or pass a run folder holding checkpoint-<step> folders with --checkpoints.")
    return [Unit(spec, revision, step) for revision, step in plan_revisions(spec, request.revisions, request.checkpoints)]


def plan_revisions(spec: ModelSpec, revisions: list[str], checkpoints: bool) -> list[tuple[str | None, int | None]]:
    """(revision, training step) pairs to run: ``REV``, ``REV@STEP``, the registry's checkpoints, or the pin."""
    if checkpoints:
        if not spec.checkpoints:
            raise UserError(f"model '{spec.name}' lists no checkpoints in the registry.",
                            "Pass revisions with --revision REV@STEP instead.")
        return [(c.revision, c.step) for c in spec.checkpoints]
    if not revisions:
        return [(None, None)]
    return [_parse_revision(spec, text) for text in revisions]


def _parse_revision(spec: ModelSpec, text: str) -> tuple[str, int | None]:
    revision, _, step = text.partition("@")
    if step and not step.isdigit():
        raise UserError(f"--revision '{text}': the step after @ must be a whole number.", "Write REV@STEP, e.g. main@1000.")
    return revision, int(step) if step else spec.step_of(revision)


def resolve_device(device: str) -> str:
    """``auto`` becomes ``cuda`` when a GPU is visible, else ``cpu``; a device that cannot be used is a UserError."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise UserError(f"--device {device!r} is not a device.", "Use cpu, cuda, cuda:1 ... or auto.") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {device}: no CUDA GPU is visible to torch on this machine.", "Use --device cpu (or auto).")
    if kind not in ("cpu", "cuda"):
        raise UserError(f"--device {device!r}: only cpu and cuda devices are supported.", "Use cpu, cuda, cuda:1 ... or auto.")
    return device
