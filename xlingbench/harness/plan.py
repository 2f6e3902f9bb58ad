"""The checked plan of a run and its units: the types the runner builds and the grid runs.

Why a module of its own: the runner makes a plan and hands it to the grid, and the grid hands
units back to the code that runs them; with these types in the runner, runner and grid imported
each other. Both import them from here now, and nothing here imports either.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from xlingbench.core.task import Task
from xlingbench.inputs.cache import Cache
from xlingbench.inputs.registry import ModelSpec


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
    #: the requested dtype (``auto`` or a concrete one); each unit resolves it for its checkpoint
    dtype: str
    #: added to every model revision's provenance (a run file's name and digest)
    record: dict[str, str] = field(default_factory=dict)
