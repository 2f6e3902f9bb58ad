"""A training run's output folder as one model with checkpoints: which folders, which steps, which are whole.

Why: people training a model have ``out/checkpoint-500``, ``out/checkpoint-1000`` ... on disk, and
want one trajectory (one model, one row per step), not ten unrelated local models. This module
only reads the folder; the runner turns each checkpoint into a unit of the run's model, whose
revision is the checkpoint's content fingerprint (so an unchanged checkpoint is skipped on rerun).

Checkpoint folders are the direct subfolders of the run folder named as common trainers name
them (:data:`PATTERNS`). The step comes from the name, or from ``trainer_state.json``'s
``global_step`` where that file is present. A folder still being written (no config or weights
yet, a safetensors file shorter than its header says, a shard its index names but that is not
there) is *incomplete*: it is skipped with its reason, never read half-written.
"""
from __future__ import annotations

import json
import logging
import re
import struct
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

from xlingbench.core.errors import UserError
from xlingbench.inputs.registry import ModelSpec

#: checkpoint folder names of common trainers: transformers Trainer, Megatron/nanotron/OLMo-style, DeepSpeed, Megatron-LM
PATTERNS = (
    re.compile(r"checkpoint-(\d+)"),   # transformers Trainer
    re.compile(r"step_(\d+)"),         # nanotron, OLMo-style
    re.compile(r"step(\d+)"),          # OLMo, Pythia-style branches saved locally
    re.compile(r"global_step(\d+)"),   # DeepSpeed
    re.compile(r"iter_(\d+)"),         # Megatron-LM (iter_0001000)
)
#: the names of :data:`PATTERNS` as a user reads them (docs, messages)
NAMES = "checkpoint-<step>, step_<step>, step<step>, global_step<step>, iter_<step>"
SAFETENSORS_INDEX = "model.safetensors.index.json"
LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalCheckpoint:
    """One checkpoint folder of a training run: where it is and its training step."""

    path: Path
    step: int


class Discovery(NamedTuple):
    """What a run folder holds: its complete checkpoints in step order, and each skipped folder's reason."""

    checkpoints: list[LocalCheckpoint]
    skipped: list[str]


def name_step(name: str) -> int | None:
    """The step a checkpoint folder's name gives (``checkpoint-500`` -> 500), or None for another name."""
    for pattern in PATTERNS:
        found = pattern.fullmatch(name)
        if found:
            return int(found.group(1))
    return None


def checkpoint_step(folder: Path) -> int | None:
    """The folder's step: ``trainer_state.json``'s ``global_step`` where present, else its name's."""
    named = name_step(folder.name)
    state = folder / "trainer_state.json"
    if named is None or not state.is_file():
        return named
    try:
        step = json.loads(state.read_text(encoding="utf-8")).get("global_step")
    except (OSError, ValueError, AttributeError):  # being written, or not a JSON object: the name decides
        return named
    return step if isinstance(step, int) and step >= 0 else named


def discover(run: Path) -> Discovery:
    """The complete checkpoints of the run folder ``run`` in step order, and a reason per incomplete one.

    ``run`` may also be one checkpoint folder itself (``out/checkpoint-500``): that checkpoint alone.
    """
    folders = [run] if name_step(run.name) is not None else sorted(p for p in run.iterdir() if p.is_dir() and name_step(p.name) is not None)
    found, skipped = [], []
    for folder in folders:
        reason = incomplete(folder)
        if reason:
            skipped.append(f"skipped {folder}: {reason}")
            continue
        step = checkpoint_step(folder)
        if step is not None:
            found.append(LocalCheckpoint(folder, step))
    steps = [c.step for c in found]
    twice = sorted({s for s in steps if steps.count(s) > 1})
    if twice:
        raise UserError(f"{run} holds several checkpoints of step {twice[0]} "
                        f"({', '.join(c.path.name for c in found if c.step == twice[0])}).",
                        "Keep one folder per step (move the others out of the run folder).")
    return Discovery(sorted(found, key=lambda c: c.step), skipped)


def incomplete(folder: Path) -> str:
    """Why ``folder`` cannot be read as a checkpoint yet (no config, no weights, a partial or missing
    safetensors file), or "" when every file it needs is whole."""
    if not (folder / "config.json").is_file():
        return "no config.json yet (being written?)"
    index = folder / SAFETENSORS_INDEX
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            return f"{SAFETENSORS_INDEX} is not readable yet ({type(err).__name__})"
    elif (folder / "model.safetensors").is_file():
        shards = ["model.safetensors"]
    else:
        return "no safetensors weights yet (being written?)"
    for shard in shards:
        reason = partial_safetensors(folder / shard)
        if reason:
            return reason
    return ""


def partial_safetensors(path: Path) -> str:
    """Why the safetensors file ``path`` is not whole (missing, header cut, shorter than its
    tensors' end), or "": its length must be exactly header + the last tensor's end offset."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > size - 8:
                return f"{path.name} is partial (its header is cut)"
            header = json.loads(handle.read(length))
        end = max((entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"), default=0)
    except FileNotFoundError:
        return f"{path.name} is not there yet"
    except (OSError, struct.error, ValueError, KeyError, TypeError, IndexError, AttributeError) as err:
        return f"{path.name} is partial ({type(err).__name__})"
    if size != 8 + length + end:
        return f"{path.name} is partial ({size} of {8 + length + end} bytes)"
    return ""


def checkpoint_specs(spec: ModelSpec, name: str | None = None) -> list[tuple[ModelSpec, int]]:
    """The local run folder ``spec`` as (spec of one checkpoint, step) pairs in step order, each
    skipped folder logged as one warning line: each checkpoint is the run's model (named ``name``, else the run
    folder's name) read from its own folder, so all of them form one trajectory."""
    run = Path(spec.hub_id)
    found = discover(run)
    if not found.checkpoints:
        skipped = f" ({'; '.join(found.skipped)})" if found.skipped else ""
        raise UserError(f"{spec.name} holds no complete checkpoint folder{skipped}.",
                        f"Point -m at a training run's output folder, whose checkpoints are named like {NAMES}.")
    for line in found.skipped:  # one line each (the CLI prints them on stderr)
        LOG.warning(line)
    model = name or run_name(run)
    return [(replace(spec, name=model, hub_id=str(c.path.resolve())), c.step) for c in found.checkpoints]


def run_name(folder: Path) -> str:
    """The model name of a run folder (its own name), or of a checkpoint folder (its run's)."""
    folder = folder.resolve()
    return folder.parent.name if name_step(folder.name) is not None else folder.name


def is_run_folder(spec: ModelSpec) -> bool:
    """Whether ``spec`` is a local folder that is or holds checkpoint folders (rather than one saved model)."""
    if spec.source != "local":
        return False
    folder = Path(spec.hub_id)
    return name_step(folder.name) is not None or any(p.is_dir() and name_step(p.name) is not None for p in folder.iterdir())
