"""Run one unit of a plan: a model revision, loaded once, every task of the plan on it.

Why a module of its own: both executors of the grid (this process, a Ray worker) run exactly
this, and it is where each task is timed and each outcome gets its provenance, its task key and
its configuration fingerprint (both from :mod:`xlingbench.core.identity`, with the resolved dtype
and the device kind).
"""
from __future__ import annotations

import dataclasses
import platform
import subprocess
import sys
import time
import unicodedata
from pathlib import Path
from typing import Any, Iterator

from xlingbench import __version__
from xlingbench.core import identity
from xlingbench.core.progress import scope
from xlingbench.core.task import ModelRevision, Outcome, Task, TaskResult
from xlingbench.harness.plan import Plan, Unit

LIBRARIES = ("torch", "transformers", "numpy", "scikit-learn", "mlflow", "safetensors", "tokenizers")


def run_unit(unit: Unit, checked: Plan) -> Iterator[Outcome]:
    """The outcomes of every task on one model revision, loaded once, each as soon as it is done."""
    from xlingbench.inputs.representations import Representations
    from xlingbench.inputs.sources import open_source

    source = open_source(unit.spec, unit.revision)
    inputs = Representations(source, checked.cache, device=checked.device, dtype=checked.dtype)
    model = None
    for task in checked.tasks:
        if task.metadata.archs and source.arch not in task.metadata.archs:
            print(f"skipped {unit.spec.name} {task.metadata.name}: it runs on {' or '.join(task.metadata.archs)} models "
                  f"and this is an {source.arch} model.", file=sys.stderr)
            continue
        started = time.time()
        inputs.begin_task()  # what the last task held and this one does not read is released
        params = checked.params[task.metadata.name]
        with scope(f"{unit.spec.name} {task.metadata.name}"):  # progress bars name the model and the task
            result = run_task(task, inputs, params)
        model = model or model_revision(unit, source.revision, source.arch, checked.device, inputs.dtype, checked.record,
                                        getattr(source, "quantisation", None))
        key = identity.task_key(model.name, model.revision, model.step, task.metadata, dataclasses.asdict(params),
                                inputs.dtype, checked.device)
        yield Outcome(model, task.metadata, result, started, time.time(), fingerprint(task, result, model), task_key=key)


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
    """The configuration fingerprint of a finished task run (:func:`xlingbench.core.identity.fingerprint`):
    its parameters, the data it read (``result.info["inputs"]``), the resolved dtype and device kind,
    and a quantised file's types."""
    return identity.fingerprint(task.metadata, result.params, result.info.get("inputs", {}), model.provenance["dtype"],
                                model.provenance["device"], unicodedata.unidata_version, model.provenance.get("quantisation"))


def model_revision(unit: Unit, revision: str, arch: str, device: str, dtype: str, record: dict[str, str] | None = None,
                   quantisation: dict[str, str] | None = None) -> ModelRevision:
    """The record every sink keeps of one model revision (``record``: added to its provenance; with a
    quantised file's types when the weights are one)."""
    spec = unit.spec
    found = {**provenance(device, dtype), **(record or {}), **({"quantisation": quantisation} if quantisation else {})}
    return ModelRevision(name=spec.name, model_id=spec.hub_id, revision=revision, step=unit.step, family=spec.family,
                         arch=arch, size=spec.size, licence=spec.licence, provenance=found)


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
