"""Run a plan's grid of model revisions x tasks, in this process or on a Ray cluster, resumably.

Why a module of its own: a team comparing twenty checkpoints of three models on five tasks has
300 task runs, and a grid that dies at run 200 must not start again from zero. Three rules make
it resumable and idempotent, whichever executor runs the units:

* **A task key, known before anything runs** (:func:`xlingbench.core.identity.task_key`): the
  model, its resolved revision and step, the task and its version, its typed parameters, the
  resolved dtype and the device kind. Each sink records it (``Outcome.task_key``); a task run
  whose key every sink already holds is skipped
  (``--rerun`` runs it again), and a unit whose tasks are all skipped is never scheduled.
* **One writer**: a unit (one model revision, loaded once, running its tasks) returns typed
  :class:`Outcome` records; only this process writes them to the sinks, once per key, so an
  SQLite store is never written by two processes and a retried Ray task cannot log twice.
* **A failed unit does not stop the grid**: it is recorded with its one-line reason, the others
  go on, and the caller names every failure at the end.
"""
from __future__ import annotations

import dataclasses
import logging
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from xlingbench.core import identity
from xlingbench.core.errors import UserError
from xlingbench.core.progress import enabled
from xlingbench.core.task import Outcome
from xlingbench.harness.plan import Plan, Unit
from xlingbench.harness.unit import run_unit
from xlingbench.sinks import Sink
from xlingbench.sinks.delivery import DELIVERY

EXECUTORS = ("local", "ray")
#: how often Ray runs a unit again when its worker process dies (a raised error is never retried)
RAY_RETRIES = 2
#: environment of every Ray worker: no progress bars (the driver draws the grid's one bar)
WORKER_ENV = {"XLINGBENCH_PROGRESS": "0"}


@dataclass(frozen=True)
class GridSettings:
    """How to run the grid: which executor, on which Ray cluster, how many units at once, and
    whether task runs already in the sinks run again."""

    executor: str = "local"
    #: a Ray cluster's address (``auto``, ``ray://host:10001``); None starts a local one
    ray_address: str | None = None
    #: units running at once (None: one per CPU of the Ray cluster, one per GPU with cuda)
    workers: int | None = None
    rerun: bool = False


@dataclass(frozen=True)
class Skipped:
    """A task run not run again: every sink already holds its result (``refs``: where)."""

    model: str
    revision: str
    step: int | None
    task: str
    key: str
    refs: dict[str, str]


@dataclass(frozen=True)
class Failure:
    """A unit that raised: its one-line reason, whether the user can fix it, the traceback (text:
    a Ray worker's exception loses its own) and the exception (the Python API raises it)."""

    unit: Unit
    reason: str
    user_error: bool
    error: BaseException
    detail: str = ""

    @property
    def label(self) -> str:
        """``model@revision``, as the user asked for it."""
        return f"{self.unit.spec.name}@{self.unit.revision or self.unit.spec.revision}"


@dataclass
class GridResult:
    """What a grid did: the new outcomes, the task runs skipped, and the units that failed."""

    outcomes: list[Outcome] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)


@dataclass(frozen=True)
class Work:
    """One unit to schedule, with the plan narrowed to the tasks it still has to run."""

    unit: Unit
    plan: Plan


def run_grid(checked: Plan, sinks: dict[str, Sink], settings: GridSettings,
             report: Callable[[Outcome], None] = lambda o: None) -> GridResult:
    """Skip what the sinks hold, run the rest with ``settings.executor``, write every new outcome once.

    On any exception or interrupt, each sink with an ``abort(reason)`` method is told before it propagates.
    """
    result = GridResult()
    try:
        work = _pending(checked, sinks, settings.rerun, result)
        writer = _Writer(checked, sinks, report, result, settings.rerun)
        bar = GridProgress(len(checked.units), len(checked.units) - len(work) - len(result.failed), len(result.failed))
        try:
            (_run_ray if settings.executor == "ray" else _run_local)(work, writer, bar, settings)
        finally:
            bar.close()
    except BaseException as exc:
        for sink in sinks.values():
            abort = getattr(sink, "abort", None)
            if abort is not None:
                abort(f"{type(exc).__name__}: {exc}")
        raise
    return result


def check_settings(settings: GridSettings) -> None:
    """Refuse an unknown executor, a worker count below one, or Ray when it is not installed (before any sink opens)."""
    if settings.executor not in EXECUTORS:
        raise UserError(f"--executor {settings.executor!r} is not an executor.", f"Use one of: {', '.join(EXECUTORS)}.")
    if settings.workers is not None and settings.workers < 1:
        raise UserError(f"--workers {settings.workers}: a grid needs at least one worker.", "Pass --workers 1 or more, or drop it.")
    if settings.executor == "ray":
        _import_ray()


def _pending(checked: Plan, sinks: dict[str, Sink], rerun: bool, result: GridResult) -> list[Work]:
    """The units with tasks left to run; fills ``result.skipped`` (and ``failed``: a revision that
    cannot be resolved). A task is skipped only when there is a sink and every sink holds its key."""
    keys: dict[Unit, dict[str, str]] = {}
    revisions: dict[Unit, str] = {}
    for unit in checked.units:
        try:
            revisions[unit], dtype = _resolved(unit, checked.dtype)
        except Exception as exc:  # noqa: BLE001 - a unit's failure is reported, the grid goes on
            result.failed.append(failure(unit, exc))
            continue
        keys[unit] = {t.metadata.name: identity.task_key(unit.spec.name, revisions[unit], unit.step, t.metadata,
                                                          dataclasses.asdict(checked.params[t.metadata.name]), dtype,
                                                          checked.device) for t in checked.tasks}
    wanted = {key for by_task in keys.values() for key in by_task.values()}
    held = {} if rerun or not sinks else {name: _finished(sink, wanted) for name, sink in sinks.items()}
    work = []
    for unit, by_task in keys.items():
        todo = []
        for task in checked.tasks:
            key = by_task[task.metadata.name]
            if held and all(key in refs for refs in held.values()):
                refs = {name: refs[key] for name, refs in held.items()}
                result.skipped.append(Skipped(unit.spec.name, revisions[unit], unit.step, task.metadata.name, key, refs))
            else:
                todo.append(task)
        if todo:
            work.append(Work(unit, dataclasses.replace(checked, tasks=todo)))
    return work


def _resolved(unit: Unit, dtype: str) -> tuple[str, str]:
    """The commit (or a local folder's content hash) the unit's revision names, and the dtype its
    weights load in when ``dtype`` is asked for: cheap lookups, no weights read."""
    from xlingbench.inputs.sources import open_source, resolve_dtype

    source = open_source(unit.spec, unit.revision)
    return source.revision, resolve_dtype(source, dtype)


def _finished(sink: Sink, keys: set[str]) -> dict[str, str]:
    """What ``sink`` already holds; a sink without ``finished`` (an older plugin) holds nothing."""
    finished = getattr(sink, "finished", None)
    return {} if finished is None else finished(keys)


def failure(unit: Unit, exc: BaseException) -> Failure:
    """``exc`` as a unit's failure: a UserError's own line, else the exception's type and message."""
    cause = getattr(exc, "cause", None) or exc  # Ray wraps a worker's exception; its cause is the original
    if isinstance(cause, UserError):
        return Failure(unit, cause.one_line().removeprefix("error: "), True, cause)
    detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return Failure(unit, f"{type(cause).__name__}: {cause}", False, cause, detail)


def attempt(unit: Unit, checked: Plan) -> Iterator[Outcome | Failure]:
    """The unit's outcomes as they finish, then a :class:`Failure` if it raised: the one unit of
    work both executors run."""
    try:
        yield from run_unit(unit, checked)
    except Exception as exc:  # noqa: BLE001 - a unit's failure is reported, the grid goes on
        yield failure(unit, exc)


def run_in_worker(unit: Unit, checked: Plan) -> list[Outcome | Failure]:
    """What a Ray task runs: the whole unit, returned at once (a worker never touches a sink)."""
    return list(attempt(unit, checked))


class _Writer:
    """The one writer: each new outcome to every sink, once per task key, then the model revision's end."""

    def __init__(self, checked: Plan, sinks: dict[str, Sink], report: Callable[[Outcome], None], result: GridResult,
                 rerun: bool = False) -> None:
        self.checked, self.sinks, self.report, self.result, self.rerun = checked, sinks, report, result, rerun
        self.written: set[str] = set()

    def take(self, items: Iterable[Outcome | Failure]) -> bool:
        """Write one unit's results as they come (an iterator streams); whether the unit succeeded."""
        written, ok = [], True
        for item in items:
            if isinstance(item, Failure):
                self.result.failed.append(item)
                ok = False
            elif self._write(item):
                written.append(item)
        if written:
            for sink in self.sinks.values():
                sink.finish_model(written[0].model, written)
        return ok

    def _write(self, outcome: Outcome) -> bool:
        """Hand ``outcome`` to every sink; False (nothing written) for a task key already written."""
        key = outcome.task_key
        if key in self.written or self._held(outcome):
            return False
        for name, sink in self.sinks.items():
            ref = sink.write(outcome)
            if ref is not None:
                outcome.refs[name] = ref
        if outcome.refs:  # some sink took it (the Ctrl-C line counts it, whichever sink)
            DELIVERY.logged += 1
        self.written.add(key)
        self.report(outcome)
        self.result.outcomes.append(outcome)
        return True


    def _held(self, outcome: Outcome) -> bool:
        """Whether every sink holds the outcome's key by now: a run started at the same time logged it
        first (the check at start cannot see that), so it is skipped, not logged twice (``--rerun``: never)."""
        if self.rerun or not self.sinks:
            return False
        held = {name: _finished(sink, {outcome.task_key}) for name, sink in self.sinks.items()}
        if not all(outcome.task_key in refs for refs in held.values()):
            return False
        model = outcome.model
        refs = {name: found[outcome.task_key] for name, found in held.items()}
        self.result.skipped.append(Skipped(model.name, model.revision, model.step, outcome.task.name, outcome.task_key, refs))
        self.written.add(outcome.task_key)
        return True


class GridProgress:
    """One bar over the grid's units, counting done / failed / skipped (quiet like every other bar)."""

    def __init__(self, total: int, skipped: int, failed: int) -> None:
        self.done, self.failed, self.skipped = 0, failed, skipped
        self.bar = None
        if enabled() and total > 1:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=skipped + failed, desc="grid", unit="unit", dynamic_ncols=True)
            self._show()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def unit_done(self, ok: bool) -> None:
        """Count one more unit, done or failed."""
        if ok:
            self.done += 1
        else:
            self.failed += 1
        if self.bar is not None:
            self.bar.update(1)
            self._show()

    def _show(self) -> None:
        self.bar.set_postfix(done=self.done, failed=self.failed, skipped=self.skipped)


def _run_local(work: list[Work], writer: _Writer, bar: GridProgress, settings: GridSettings) -> None:
    """Each unit in turn in this process, each outcome written as soon as its task is done."""
    for item in work:
        bar.unit_done(writer.take(attempt(item.unit, item.plan)))


def _run_ray(work: list[Work], writer: _Writer, bar: GridProgress, settings: GridSettings) -> None:
    """The units as Ray tasks, at most ``workers`` at a time, each written here as it completes.

    A unit asks for one CPU (and one GPU with ``--device cuda``); Ray runs it again when its
    worker process dies, never when it raised (the error is the unit's result, not a crash).
    """
    ray = _import_ray()
    joined = _connect(ray, settings)
    try:
        cuda = bool(work) and work[0].plan.device.startswith("cuda")
        remote = ray.remote(run_in_worker).options(num_cpus=1, num_gpus=1 if cuda else 0,
                                                   max_retries=RAY_RETRIES, retry_exceptions=False)
        limit = settings.workers or _capacity(ray, cuda)
        queue, running = deque(work), {}
        while queue or running:
            while queue and len(running) < limit:
                item = queue.popleft()
                running[remote.remote(item.unit, item.plan)] = item
            ready, _ = ray.wait(list(running), num_returns=1)
            item = running.pop(ready[0])
            try:
                results = ray.get(ready[0])
            except ray.exceptions.RayError as exc:  # the worker died more often than RAY_RETRIES
                results = [failure(item.unit, exc)]
            bar.unit_done(writer.take(results))
    finally:
        if joined:
            ray.shutdown()


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError("--executor ray needs Ray, which is not installed.", "pip install 'xlingbench[ray]'") from None
    return ray


def _connect(ray: Any, settings: GridSettings) -> bool:
    """Join the cluster at ``ray_address`` (or start a local one); whether this call connected
    (and so disconnects at the end, which also stops a local cluster it started).

    Workers get this process's xlingbench package (``py_modules``), so they run the same code as
    the driver wherever they are, and the :data:`WORKER_ENV`. A process already connected (a
    notebook that called ``ray.init``) keeps its connection.
    """
    if ray.is_initialized():
        return False
    import xlingbench

    local = settings.ray_address is None  # "local": a new cluster, never one `ray start` left running here
    ray.init(address=settings.ray_address or "local", num_cpus=settings.workers if local else None, include_dashboard=False,
             log_to_driver=False, logging_level=logging.WARNING,
             runtime_env={"py_modules": [xlingbench], "env_vars": dict(WORKER_ENV)})
    return True


def _capacity(ray: Any, cuda: bool) -> int:
    """Units the cluster can run at once: its GPUs with cuda, else its CPUs."""
    resources = ray.cluster_resources()
    return max(1, int(resources.get("GPU" if cuda else "CPU", 1)))
