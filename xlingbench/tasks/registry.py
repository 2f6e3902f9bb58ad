"""The task registry: every task is a ``TASK`` object named under the ``xlingbench.tasks`` entry
point group, so a third-party package adds a task by declaring one entry point, with no change
to xlingbench. Listing names never imports a task module (``xlingbench tasks`` answers at once).
"""
from __future__ import annotations

from xlingbench.core.plugins import load_plugin, plugin_names
from xlingbench.core.task import Task

TASK_GROUP = "xlingbench.tasks"
#: the built-in tasks in the order of the papers (tasks 1-6); third-party tasks follow by name
PAPER_ORDER = ("script_separability", "neighbour_script_count", "translation_in_neighbours", "calign", "colap",
               "concept_patching")


def task_names() -> list[str]:
    """Names of every registered task (tasks 1-6 first), without importing them."""
    rank = {name: i for i, name in enumerate(PAPER_ORDER)}
    return sorted(plugin_names(TASK_GROUP), key=lambda n: (rank.get(n, len(rank)), n))


def default_task_names() -> list[str]:
    """The tasks a run that names none runs: every registered task that does not opt out
    (``TaskMetadata.default``), in :func:`task_names` order. Imports the task modules."""
    return [name for name in task_names() if load_task(name).metadata.default]


def load_task(name: str) -> Task:
    """Import and return the task registered as ``name``."""
    return load_plugin(TASK_GROUP, name, "task", "Run `xlingbench tasks` to list the tasks.")
