"""A JSON results folder read as a :class:`~xlingbench.sinks.store.ResultStore`: board, gate, skip.

Why: a folder written by ``--sink json`` is what a team reviews in a pull request (as MTEB's
results repository is); ``xlingbench leaderboard --results-dir DIR``, ``compare`` and ``check``
read it with no MLflow store, and its rows are the rows the MLflow store gives for the same runs
(the same metric names, the latest value of each step metric, the same fingerprint).

Run references in a folder: a result file or a folder under it (``MODEL/REVISION``: every task
run below it, the newest of a task winning), ``@FILE`` of ``xlingbench run --json`` (the files
its ``refs.json`` name), or a selector ``KEY=VALUE[,KEY=VALUE]`` over ``model``, ``revision``,
``step`` and ``task`` (the newest matching model revision).
"""
from __future__ import annotations

from pathlib import Path

from xlingbench.core.errors import UserError
from xlingbench.core.task import TaskResult
from xlingbench.sinks.json_sink import read_document, restore_nan, result_files
from xlingbench.sinks.store import Histories, TaskRow, flat_metrics, latest_values, one_revision, refs_of

SELECTOR_KEYS = ("model", "revision", "step", "task")


class JsonStore:
    """The finished task runs of a results folder (every readable result file, any schema version)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.where = str(self.root)
        if not self.root.is_dir():
            raise UserError(f"no results folder at {self.root}.", "Pass --results-dir the folder `xlingbench run --sink json` wrote.")
        self._rows: list[TaskRow] | None = None
        self._steps: dict[str, dict[str, list[tuple[int, float]]]] = {}

    def rows(self) -> list[TaskRow]:
        """One row per result file, in path order (read once)."""
        if self._rows is None:
            self._rows = [row for path in result_files(self.root) if (row := self._row(path)) is not None]
        return self._rows

    def resolve(self, ref: str) -> dict[str, TaskRow]:
        """``task -> row`` of one model revision named by ``ref`` (see the module docstring)."""
        if ref.startswith("@"):
            paths = {self._relative(Path(p)) for p in refs_of(Path(ref[1:]), "json")}
            return one_revision([r for r in self.rows() if r.run_id in paths], ref[1:])
        if "=" in ref:
            return self._select(ref)
        path = self._relative(Path(ref))
        found = [r for r in self.rows() if r.run_id == path or r.run_id.startswith(path.rstrip("/") + "/")]
        if not found:
            raise UserError(f"no result under {ref!r} in {self.root}.",
                            "Name a result file or a MODEL/REVISION folder of --results-dir, @FILE of `run --json`, or KEY=VALUE.")
        return one_revision(found, ref)

    def finished(self, keys: set[str]) -> dict[str, str]:
        """Which of ``keys`` a result file holds, mapped to its path."""
        return {r.task_key: str(self.root / r.run_id) for r in self.rows() if r.task_key in keys}

    def histories(self, wanted: list[tuple[str, str]]) -> Histories:
        """The step metrics' series of the files named in ``wanted`` (read with the rows: no request)."""
        self.rows()
        return {(run, metric): sorted(self._steps.get(run, {}).get(metric, [])) for run, metric in wanted}

    def _row(self, path: Path) -> TaskRow | None:
        document = read_document(path)
        if document is None:
            return None
        result = TaskResult.from_json_dict(restore_nan(document["result"]))
        run_id = path.relative_to(self.root).as_posix()
        self._steps[run_id] = result.step_metrics
        metrics = {**flat_metrics(result), **latest_values(result)}
        model, task = document["model"], document["task"]
        warnings = result.info.get("warnings", [])
        value = metrics.get(task["main_score"])
        return TaskRow(model=model["name"], model_id=model["model_id"], revision=model["revision"], family=model["family"],
                       size=model["size"], arch=model["arch"], step=model["step"], task=task["name"],
                       main_score=task["main_score"], value=value, higher_is_better=task["higher_is_better"],
                       config=document["fingerprint"], warnings=tuple(str(w) for w in warnings), metrics=metrics,
                       run_id=run_id, parent_run_id="", experiment_id="", url="",
                       start_time=int(round(document["started"] * 1000)), task_key=document.get("task_key") or "")

    def _relative(self, path: Path) -> str:
        """``path`` as a run id: relative to the folder (given relative to it, or to the working folder)."""
        for candidate in (path, self.root / path):
            try:
                return candidate.resolve().relative_to(self.root.resolve()).as_posix()
            except ValueError:
                continue
        return path.as_posix()

    def _select(self, selector: str) -> dict[str, TaskRow]:
        pairs = [item.partition("=") for item in selector.split(",")]
        if any(not sep or key not in SELECTOR_KEYS for key, sep, _ in pairs):
            raise UserError(f"bad selector {selector!r} for a results folder.",
                            f"Write KEY=VALUE[,KEY=VALUE] with keys from: {', '.join(SELECTOR_KEYS)}.")
        wanted = {key: value for key, _, value in pairs}
        found = [r for r in self.rows() if all(str(getattr(r, key)) == value or (key == "revision" and r.revision.startswith(value))
                                               for key, value in wanted.items())]
        if not found:
            raise UserError(f"no result in {self.root} matches {selector!r}.", "Check the values in the files' model and task records.")
        newest = max(found, key=lambda r: r.start_time)
        return one_revision([r for r in found if (r.model, r.revision, r.step) == (newest.model, newest.revision, newest.step)], selector)

