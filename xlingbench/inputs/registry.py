"""The two registries: models (a TOML file in the repository) and tasks (entry points).

Why this shape: adding a model is one TOML entry, adding a task is one module named under
the ``xlingbench.tasks`` entry point group (so a third-party package can add tasks too).
Consulting either never imports torch, transformers or mlflow, so ``xlingbench models``,
``xlingbench tasks`` and every ``--help`` answer at once.
"""
from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING

from xlingbench.core.errors import UserError

if TYPE_CHECKING:
    from xlingbench.core.task import Task

REGISTRY_FILE = Path(__file__).with_name("models.toml")
TASK_GROUP = "xlingbench.tasks"
#: the built-in tasks in the order of the papers (tasks 1-5); third-party tasks follow by name
PAPER_ORDER = ("script_separability", "neighbour_script_count", "translation_in_neighbours", "calign", "colap")


@dataclass(frozen=True)
class Checkpoint:
    """One training checkpoint of a model: a Hub revision (branch or commit) and its step."""

    revision: str
    step: int


@dataclass(frozen=True)
class ModelSpec:
    """Everything the xlingbench knows about a model before loading it."""

    name: str
    hub_id: str
    revision: str = "main"
    family: str = "unknown"
    arch: str = "unknown"
    size: str = "unknown"
    licence: str = "unknown"
    description: str = ""
    source: str = "hub"
    gated: bool = False
    pinned: bool = True
    checkpoints: tuple[Checkpoint, ...] = field(default=())

    def step_of(self, revision: str) -> int | None:
        """The training step of ``revision`` when it is one of this model's checkpoints."""
        return next((c.step for c in self.checkpoints if c.revision == revision), None)


@lru_cache(maxsize=4)
def load_models(path: Path = REGISTRY_FILE) -> dict[str, ModelSpec]:
    """Parse the registry file into specs keyed by registry name."""
    with open(path, "rb") as handle:
        entries = tomllib.load(handle).get("models", {})
    specs = {}
    for name, entry in entries.items():
        checkpoints = tuple(Checkpoint(str(c["revision"]), int(c["step"])) for c in entry.pop("checkpoints", []))
        specs[name] = ModelSpec(name=name, checkpoints=checkpoints, **entry)
    return specs


def resolve_model(name: str) -> ModelSpec:
    """A registry name, a local model directory, or a Hub id (``owner/name``) as a spec."""
    models = load_models()
    if name in models:
        return models[name]
    path = Path(name).expanduser()
    if path.is_dir():
        return ModelSpec(name=name, hub_id=str(path.resolve()), revision="local", source="local")
    if "/" in name and not name.startswith((".", "/", "~")):
        return ModelSpec(name=name, hub_id=name, pinned=False)
    raise UserError(f"unknown model '{name}'{_suggest(name, models)}.",
                    "Run `xlingbench models` for the registry, or pass a Hub id (owner/name) or a local directory.")


def task_names() -> list[str]:
    """Names of every registered task (tasks 1-5 first), without importing them."""
    names = {ep.name for ep in entry_points(group=TASK_GROUP)}
    rank = {name: i for i, name in enumerate(PAPER_ORDER)}
    return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))


def load_task(name: str) -> "Task":
    """Import and return the task registered as ``name``."""
    found = [ep for ep in entry_points(group=TASK_GROUP) if ep.name == name]
    if not found:
        raise UserError(f"unknown task '{name}'{_suggest(name, task_names())}.",
                        "Run `xlingbench tasks` to list the tasks.")
    try:
        return found[0].load()
    except ImportError as exc:
        raise UserError(f"task '{name}' could not be imported ({exc}).",
                        f"Install the package that provides it ({found[0].value}).") from exc


def _suggest(name: str, choices: object) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)  # type: ignore[arg-type]
    return f" (did you mean '{close[0]}'?)" if close else ""
