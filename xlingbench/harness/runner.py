"""Run tasks over model revisions and send every result to the tracking sink.

Why a separate module: the CLI only parses; this is where a run is planned (models x
revisions x tasks), where task parameters are built from the command line, where each phase
is timed, and where provenance (versions, revision, device) is attached to every result.
"""
from __future__ import annotations

import dataclasses
import platform
import subprocess
import time
import typing
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from xlingbench import __version__
from xlingbench.inputs.cache import Cache
from xlingbench.core.errors import UserError
from xlingbench.inputs.registry import ModelSpec, load_task, resolve_model
from xlingbench.sinks.mlflow_sink import DEFAULT_EXPERIMENT, Tracker
from xlingbench.core.task import Task, TaskResult

LIBRARIES = ("torch", "transformers", "numpy", "scikit-learn", "mlflow", "safetensors", "tokenizers")


@dataclass
class RunRequest:
    """What the user asked for: models x revisions x tasks, with options and parameter overrides."""

    models: list[str]
    tasks: list[str]
    revisions: list[str] = field(default_factory=list)
    checkpoints: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    device: str = "auto"
    cache_dir: Path | None = None  # None: inputs.cache.default_cache_dir()
    tracking_uri: str | None = None
    experiment: str = DEFAULT_EXPERIMENT


@dataclass
class Outcome:
    """One task result of one model revision, with the MLflow run that holds it."""

    model: str
    revision: str
    step: int | None
    task: Task
    result: TaskResult
    run_id: str


def run(request: RunRequest, report: Callable[[Outcome], None] = lambda o: None) -> list[Outcome]:
    """Run every requested task on every requested model revision; log each to MLflow."""
    specs = [resolve_model(name) for name in request.models]
    tasks = [load_task(name) for name in request.tasks]
    check_overrides(tasks, request.overrides)
    params = {task.metadata.name: build_params(task, request.options, request.overrides) for task in tasks}
    tracker = Tracker(request.tracking_uri, request.experiment)
    device = resolve_device(request.device)
    outcomes = []
    for spec in specs:
        for revision, step in plan_revisions(spec, request.revisions, request.checkpoints):
            for outcome in _run_model(spec, revision, step, tasks, params, tracker, request.cache_dir, device):
                report(outcome)
                outcomes.append(outcome)
    return outcomes


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


def _run_model(spec, revision, step, tasks, params, tracker, cache_dir, device) -> list[Outcome]:
    from xlingbench.inputs.representations import Representations
    from xlingbench.inputs.sources import open_source

    source = open_source(spec, revision)
    inputs = Representations(source, Cache(cache_dir), device=device)
    tags = model_tags(spec, source.revision, source.arch, step)
    outcomes = []
    with tracker.model_run(tags, provenance(device)):
        for task in tasks:
            result = run_task(task, inputs, params[task.metadata.name])
            run_id = tracker.log_task(result, task.metadata, tags)
            if step is not None and task.metadata.main_score in result.metrics:
                tracker.log_trajectory_point(spec.name, task.metadata.name, task.metadata.main_score,
                                             result.metrics[task.metadata.main_score], step)
            outcomes.append(Outcome(spec.name, source.revision, step, task, result, run_id))
    return outcomes


def run_task(task: Task, inputs: Any, params: Any) -> TaskResult:
    """Run one task, timing its phases: load and extract as the inputs report them, any phase the
    task timed itself, and compute as the rest of the wall time."""
    before = dict(inputs.timings)
    start = time.perf_counter()
    result = task.run(inputs, params)
    total = time.perf_counter() - start
    phases = {k: v - before.get(k, 0.0) for k, v in inputs.timings.items() if v - before.get(k, 0.0) > 0}
    # phases a task timed itself (e.g. "align") stay; "compute" is whatever no phase accounts for
    phases.update({k: v for k, v in result.timings.items() if k not in ("compute", "total")})
    result.timings = {**phases, "compute": max(0.0, total - sum(phases.values())), "total": total}
    result.params = {**dataclasses.asdict(params), **result.params}
    result.info.update(model_id=inputs.model_id, revision=inputs.revision, device=inputs.device,
                       task_version=task.metadata.version, unidata_version=unicodedata.unidata_version)
    return result


def build_params(task: Task, options: dict[str, Any], overrides: list[str]) -> Any:
    """The task's parameter dataclass from its defaults, the run's shared options, then ``--set``
    (overrides naming other tasks or parameters it lacks are skipped: :func:`check_overrides` vets them)."""
    fields = {f.name: f for f in dataclasses.fields(task.params)}
    hints = typing.get_type_hints(task.params)
    values = {k: v for k, v in options.items() if k in fields and v is not None}
    for text in overrides:
        scope, name, raw = _split_override(text)
        if (scope and scope != task.metadata.name) or name not in fields:
            continue
        values[name] = _convert(raw, hints[name], text)
    return task.params(**values)


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


def _convert(raw: str, hint: Any, text: str) -> Any:
    kind = hint if isinstance(hint, type) else str
    try:
        if kind is bool:
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)
            return raw.lower() in ("true", "1", "yes")
        return kind(raw)
    except ValueError as exc:
        raise UserError(f"--set {text}: '{raw}' is not a valid {kind.__name__}.", "Give a value of that type.") from exc


def resolve_device(device: str) -> str:
    """``auto`` becomes ``cuda`` when a GPU is visible, else ``cpu``."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def model_tags(spec: ModelSpec, revision: str, arch: str, step: int | None) -> dict[str, str]:
    """The tags every run of this model revision carries (the leaderboard reads these)."""
    tags = {"xlingbench.model": spec.name, "xlingbench.model_id": spec.hub_id, "xlingbench.revision": revision,
            "xlingbench.family": spec.family, "xlingbench.arch": arch, "xlingbench.size": spec.size,
            "xlingbench.licence": spec.licence}
    if step is not None:
        tags["xlingbench.step"] = str(step)
    return tags


def provenance(device: str) -> dict[str, Any]:
    """Versions of the xlingbench, its git commit and the libraries, plus device and dtype."""
    from importlib.metadata import PackageNotFoundError, version

    info: dict[str, Any] = {"harness_version": __version__, "harness_commit": _git_commit(),
                            "python": platform.python_version(), "device": device, "dtype": "float32",
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
