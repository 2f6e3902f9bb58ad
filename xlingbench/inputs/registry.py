"""The two registries: models (a TOML file in the repository) and tasks (entry points).

Why this shape: adding a model is one TOML entry, adding a task is one module named under
the ``xlingbench.tasks`` entry point group (so a third-party package can add tasks too).
Consulting either never imports torch, transformers or mlflow, so ``xlingbench models``,
``xlingbench tasks`` and every ``--help`` answer at once.
"""
from __future__ import annotations

import errno
import os

import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from xlingbench.core.errors import UserError, did_you_mean

REGISTRY_FILE = Path(__file__).with_name("models.toml")


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
    pinned: bool = True
    #: the checkpoint file of a file source (``gguf``): ``package:<module>/<name>`` or a path
    file: str = ""
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
    if path.is_file() and path.suffix.lower() == ".gguf":
        return ModelSpec(name=name, hub_id=str(path.resolve()), revision="local", arch="decoder", source="gguf")
    if path.is_dir():
        return ModelSpec(name=name, hub_id=str(path.resolve()), revision="local", source="local")
    if name.startswith((".", "/", "~")) or path.is_file() or path.is_symlink():
        raise UserError(f"model path {name} is {_path_problem(path)}.",
                        "Give a model folder (config.json, tokenizer and model.safetensors), a .gguf file, a registry name or a Hub id (owner/name).")
    if "/" in name:
        return ModelSpec(name=name, hub_id=name, pinned=False)
    raise UserError(f"unknown model '{name}'{did_you_mean(name, models)}.",
                    "Run `xlingbench models` for the registry, or pass a Hub id (owner/name), a local directory or a .gguf file.")


def _path_problem(path: Path) -> str:
    """What keeps a path given as ``-m`` from being a model folder (it is not a folder)."""
    try:
        path.stat()
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "a symbolic link loop"
        return f"a link to {os.readlink(path)}, which does not exist" if path.is_symlink() else "not there (no such file or folder)"
    return "a file, not a model folder"
