"""What the board shows, before any HTML: task columns as the tasks declare them, one line per
model revision in each task's default configuration, and the runs of other configurations apart.

Why the tasks declare their columns: the leaderboard must know no task by name, so a plugin's
task (an ``xlingbench.tasks`` entry point) gets its headline column and its charts with no change
here. A task that is in the store but not installed still gets its column, read from its runs'
tags (``xlingbench.main_score``, ``xlingbench.higher_is_better``), without charts.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from xlingbench.core.errors import UserError
from xlingbench.core.task import Chart, TaskMetadata
from xlingbench.leaderboard.collect import Leaderboard, TaskRow, default_configs, newest_runs
from xlingbench.tasks.registry import load_task, task_names


@dataclass(frozen=True)
class Column:
    """One task of the board: its headline, direction, charts, published numbers and default configuration."""

    task: str
    main_score: str
    higher_is_better: bool | None
    charts: tuple[Chart, ...]
    published: dict[str, float]
    default: str


@dataclass(frozen=True)
class Line:
    """One line of the board: a model at one revision, with its runs in the default configurations."""

    model: str
    revision: str
    family: str
    size: str
    step: int | None
    tasks: dict[str, TaskRow]


@dataclass(frozen=True)
class View:
    """The board split by configuration, so that no cell ever mixes two of them."""

    columns: list[Column]
    lines: list[Line]
    #: newest run per (model, revision, task, configuration) outside its task's default
    others: list[TaskRow]
    #: every newest run, default or not (detail pages and trajectories draw them all)
    runs: list[TaskRow]

    def column(self, task: str) -> Column:
        """The column of ``task``."""
        return next(c for c in self.columns if c.task == task)

    def others_of(self, line: Line, task: str) -> list[TaskRow]:
        """The line's runs of ``task`` in other configurations than the default."""
        return [r for r in self.others if (r.model, r.revision, r.task) == (line.model, line.revision, task)]


def build_view(board: Leaderboard) -> View:
    """Split the newest runs by configuration and order the columns as the registry does."""
    runs = newest_runs(board.rows)
    defaults = default_configs(runs)
    columns = [column(task, defaults[task], runs) for task in task_order(defaults)]
    order = {c.task: i for i, c in enumerate(columns)}
    others = sorted((r for r in runs if r.config != defaults[r.task]),
                    key=lambda r: (order[r.task], r.config, r.model, _step(r.step), r.revision))
    return View(columns, lines(runs, defaults), others, runs)


def task_order(tasks: Iterable[str]) -> list[str]:
    """Registered tasks first in the registry's order, then the store's other tasks by name."""
    seen = set(tasks)
    registered = [name for name in task_names() if name in seen]
    return registered + sorted(seen - set(registered))


def installed(task: str) -> TaskMetadata | None:
    """The task's declared metadata, or None when no installed package provides it."""
    try:
        return load_task(task).metadata
    except UserError:
        return None


def column(task: str, default: str, runs: list[TaskRow]) -> Column:
    """The column as the task declares it, else as its newest default-configuration run's tags say."""
    meta = installed(task)
    if meta is not None:
        return Column(task, meta.main_score, meta.higher_is_better, meta.charts, dict(meta.published), default)
    row = max((r for r in runs if r.task == task and r.config == default), key=lambda r: r.start_time)
    return Column(task, row.main_score, row.higher_is_better, (), {}, default)


def lines(runs: list[TaskRow], defaults: dict[str, str]) -> list[Line]:
    """One line per model revision (sorted by model, then step), holding its default-configuration runs.

    A revision with runs only in other configurations keeps its line (with empty cells), so
    no model disappears from the table because its configuration is not the common one.
    """
    found: dict[tuple[str, str], Line] = {}
    for row in runs:
        line = found.setdefault((row.model, row.revision), Line(row.model, row.revision, row.family, row.size, row.step, {}))
        if row.config == defaults[row.task]:
            line.tasks[row.task] = row
    return sorted(found.values(), key=lambda m: (m.model, _step(m.step), m.revision))


def _step(step: int | None) -> int:
    """Sort key of a step: no step (a final model) first."""
    return -1 if step is None else step
