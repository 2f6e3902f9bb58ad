"""Plan a run (models x revisions x tasks), run it, and hand every result to the sinks.

Why a separate module: the CLI and the Python API only say what to run; this is where the
request is checked as a whole before any model loads (models, revisions, tasks, options,
typed parameters, sinks), where each model revision's representations are loaded once for all
its tasks, where each task is timed, and where provenance and the configuration fingerprint
are attached to every result.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
import subprocess
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from xlingbench import __version__
from xlingbench.core import params as typed
from xlingbench.core.errors import UserError
from xlingbench.core.progress import scope
from xlingbench.core.task import ModelRevision, Outcome, Task, TaskResult
from xlingbench.harness.grid import GridResult, GridSettings, check_settings, run_grid
from xlingbench.inputs.cache import Cache
from xlingbench.inputs.registry import ModelSpec, resolve_model
from xlingbench.inputs.sources import check_dtype
from xlingbench.sinks import DEFAULT_SINKS, Sink, SinkSettings, open_sinks
from xlingbench.tasks.registry import load_task

LIBRARIES = ("torch", "transformers", "numpy", "scikit-learn", "mlflow", "safetensors", "tokenizers")
#: run-wide options (``--labels``, ``--dictionary``, ...); each reaches the tasks that declare it
OPTIONS = ("labels", "dictionary", "data", "languages", "seed")


@dataclass
class RunRequest:
    """What the user asked for: models x revisions x tasks, with options, parameters and sinks."""

    models: list[str]
    tasks: list[str]
    revisions: list[str] = field(default_factory=list)
    checkpoints: bool = False
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


@dataclass(frozen=True)
class Unit:
    """One model revision to load once and run every task on."""

    spec: ModelSpec
    revision: str | None
    step: int | None


@dataclass
class Plan:
    """A checked request: nothing in it can fail for a reason the user could have fixed up front."""

    units: list[Unit]
    tasks: list[Task]
    params: dict[str, Any]
    device: str
    cache: Cache
    dtype: str


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
    units = [Unit(spec, revision, step) for spec in map(resolve_model, request.models)
             for revision, step in plan_revisions(spec, request.revisions, request.checkpoints)]
    return Plan(units, tasks, params, resolve_device(request.device), Cache(request.cache_dir), request.dtype)


def run(request: RunRequest, report: Callable[[Outcome], None] = lambda o: None,
        sinks: dict[str, Sink] | None = None) -> GridResult:
    """Run every requested task on every requested model revision; hand each result to the sinks.

    ``sinks`` replaces the request's named sinks (the Python API passes instances). Task runs
    every sink already holds are skipped unless ``request.grid.rerun``; a unit that fails is
    recorded in the result and the others go on (see :mod:`xlingbench.harness.grid`).
    """
    checked = plan(request)
    check_settings(request.grid)
    sinks = open_sinks(request.sinks, request.sink_settings) if sinks is None else sinks
    return run_grid(checked, sinks, request.grid, report)


def run_unit(unit: Unit, checked: Plan) -> Iterator[Outcome]:
    """The outcomes of every task on one model revision, loaded once, each as soon as it is done."""
    from xlingbench.inputs.representations import Representations
    from xlingbench.inputs.sources import open_source

    source = open_source(unit.spec, unit.revision)
    inputs = Representations(source, checked.cache, device=checked.device, dtype=checked.dtype)
    model = None
    for task in checked.tasks:
        started = time.time()
        with scope(f"{unit.spec.name} {task.metadata.name}"):  # progress bars name the model and the task
            result = run_task(task, inputs, checked.params[task.metadata.name])
        model = model or model_revision(unit, source.revision, source.arch, checked.device, inputs.dtype,
                                        getattr(source, "quantisation", None))
        yield Outcome(model, task.metadata, result, started, time.time(), fingerprint(task, result, model))


def run_task(task: Task, inputs: Any, params: Any) -> TaskResult:
    """Run one task, timing its phases: load, extract, align, cluster as the inputs report them,
    and compute as the rest of the wall time."""
    before = dict(inputs.timings)
    start = time.perf_counter()
    result = task.run(inputs, params)
    total = time.perf_counter() - start
    phases = {k: v - before.get(k, 0.0) for k, v in inputs.timings.items() if v - before.get(k, 0.0) > 0}
    result.timings = {**phases, "compute": max(0.0, total - sum(phases.values())), "total": total}
    result.params = {**dataclasses.asdict(params), **result.params}
    result.info.update(model_id=inputs.model_id, revision=inputs.revision, device=inputs.device,
                       task_version=task.metadata.version, unidata_version=unicodedata.unidata_version)
    return result


def fingerprint(task: Task, result: TaskResult, model: ModelRevision) -> str:
    """A hash of everything that decides the number except the model and its revision: the task
    and its version, every parameter, the data it read (result.info["inputs"]), the dtype and the
    Unicode version. Runs compare only when their fingerprints are equal."""
    parts = {"task": task.metadata.name, "version": task.metadata.version, "params": result.params,
             "inputs": result.info.get("inputs", {}), "dtype": model.provenance.get("dtype"),
             "unidata_version": unicodedata.unidata_version}
    if model.provenance.get("quantisation"):  # a quantised file (GGUF) is another configuration than its float weights
        parts["quantisation"] = model.provenance["quantisation"]
    canonical = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


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


def model_revision(unit: Unit, revision: str, arch: str, device: str, dtype: str,
                   quantisation: dict[str, str] | None = None) -> ModelRevision:
    """The record every sink keeps of one model revision (with a quantised file's types, when it is one)."""
    spec = unit.spec
    record = provenance(device, dtype) | ({"quantisation": quantisation} if quantisation else {})
    return ModelRevision(name=spec.name, model_id=spec.hub_id, revision=revision, step=unit.step, family=spec.family,
                         arch=arch, size=spec.size, licence=spec.licence, provenance=record)


def provenance(device: str, dtype: str) -> dict[str, Any]:
    """Versions of xlingbench, its git commit and the libraries, plus device and the dtype the weights were loaded in."""
    from importlib.metadata import PackageNotFoundError, version

    info: dict[str, Any] = {"harness_version": __version__, "harness_commit": _git_commit(),
                            "python": platform.python_version(), "device": device, "dtype": dtype,
                            "unidata_version": unicodedata.unidata_version}
    for name in LIBRARIES:
        try:
            info[f"version_{name}"] = version(name)
        except PackageNotFoundError:
            info[f"version_{name}"] = "absent"
    return info


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() or "unknown"
