"""The JSON sink: one file per task run, ``<dir>/<model>/<revision>/<task>/<task key>.json``.

Why: a result a script can read with nothing but ``json.load`` (no MLflow store), kept on local
disk before and whatever any other sink does, and a folder a team can review in a pull request
and build the board or gate from (:mod:`xlingbench.sinks.json_store`). The task key is in the
path, so two configurations of one task (``--set colap.k=300`` and the default; float32 and
bfloat16; CPU and GPU) never overwrite each other. Each file carries ``schema_version``; a change
to the layout bumps it, and :func:`upgrade` reads every earlier version. Files are written
atomically (a crash leaves the old file or the new), so a file that exists is a finished result.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any

from xlingbench.core.outputs import claim_folder
from xlingbench.core.task import ModelRevision, Outcome, TaskMetadata, TaskResult
from xlingbench.inputs.cache import write_atomic
from xlingbench.sinks.settings import SinkSettings

#: 2: the task key is a field of its own and part of the path (1: ``<model>/<revision>/<task>.json``)
SCHEMA_VERSION = 2
_UNSAFE = re.compile(r"[^\w.@+-]")


def path_part(text: str) -> str:
    """``text`` as one safe path component (a Hub id's ``/`` becomes ``__``); never ``.`` or ``..``
    (``-m ..`` must not write outside the results folder) nor a hidden name.

    >>> [path_part(t) for t in ("org/model", "..", ".", ".x", "a b")]
    ['org__model', '_..', '_.', '_.x', 'a_b']
    """
    part = _UNSAFE.sub("_", text.replace("/", "__")) or "_"
    return f"_{part}" if part.startswith(".") else part


def result_path(root: Path, outcome: Outcome) -> Path:
    """Where the result of ``outcome`` is written under ``root``: one file per task key."""
    model = outcome.model
    if not outcome.task_key:
        raise ValueError(f"the outcome of {outcome.task.name} on {model.name} has no task key to name its file by")
    folder = root / path_part(model.name) / path_part(model.revision) / path_part(outcome.task.name)
    return folder / f"{path_part(outcome.task_key)}.json"


def to_document(outcome: Outcome) -> dict[str, Any]:
    """The JSON document of one outcome (NaN and infinities as null: JSON has neither)."""
    document = {
        "schema_version": SCHEMA_VERSION,
        "model": dataclasses.asdict(outcome.model),
        "task": {"name": outcome.task.name, "version": outcome.task.version, "main_score": outcome.task.main_score,
                 "higher_is_better": outcome.task.higher_is_better},
        "fingerprint": outcome.fingerprint,
        "task_key": outcome.task_key,
        "started": outcome.started,
        "ended": outcome.ended,
        "result": outcome.result.to_json_dict(),
    }
    return _finite(document)


def from_document(document: dict[str, Any], metadata: TaskMetadata) -> Outcome:
    """An Outcome back from :func:`to_document` (with the task's metadata from the registry);
    a document of an earlier schema version is upgraded first."""
    document = upgrade(document)
    result = TaskResult.from_json_dict(restore_nan(document["result"]))
    return Outcome(ModelRevision(**document["model"]), metadata, result, document["started"], document["ended"],
                   document["fingerprint"], task_key=document["task_key"] or "")


def upgrade(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` in the current schema. Version 1 kept the task key in ``result.info`` too (and
    only there when written by a plugin); version 2 keeps it once, top-level. A version newer
    than this xlingbench's is refused (ValueError): its fields may mean something else."""
    version = document.get("schema_version")
    if version == SCHEMA_VERSION:
        return document
    if version != 1:
        raise ValueError(f"result schema_version {version!r} is not one this xlingbench reads (1 to {SCHEMA_VERSION})")
    info = dict(document["result"].get("info", {}))
    key = document.get("task_key") or info.get("task_key")
    info.pop("task_key", None)
    return {**document, "schema_version": SCHEMA_VERSION, "task_key": key, "result": {**document["result"], "info": info}}


def read_document(path: Path) -> dict[str, Any] | None:
    """The upgraded document of a result file, or None for a file that is not one (unreadable,
    not JSON, another schema): a folder under review may hold other files."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        return upgrade(document) if isinstance(document, dict) else None
    except (OSError, ValueError, KeyError, AttributeError, TypeError):
        return None


def result_files(root: Path) -> list[Path]:
    """Every result file under ``root``, sorted (version 1's ``<m>/<r>/<task>.json`` and version 2's one level deeper)."""
    return sorted(p for pattern in ("*/*/*.json", "*/*/*/*.json") for p in root.glob(pattern))


class JsonSink:
    """Writes each outcome as a JSON file under ``settings.results_dir``."""

    #: its files are durable where they are written: no outbox around it
    outbox = False

    def __init__(self, settings: SinkSettings) -> None:
        self.root = Path(settings.results_dir)
        claim_folder(self.root, "run --sink json")  # a folder of the user's is refused before any model loads

    def write(self, outcome: Outcome) -> str:
        path = result_path(self.root, outcome)
        write_atomic(path, json.dumps(to_document(outcome), indent=1, ensure_ascii=False, allow_nan=False, default=str))
        return str(path)

    def finish_model(self, model: ModelRevision, outcomes: list[Outcome]) -> None:
        """Nothing to close: every file is complete when written."""

    def finished(self, keys: set[str]) -> dict[str, str]:
        """Which of ``keys`` a result file under the folder holds, mapped to its path (unreadable files hold none)."""
        found = {}
        for path in result_files(self.root):
            if len(path.relative_to(self.root).parts) == 4:  # version 2 names the file by its key: nothing to parse
                key = path.stem if path.stem in keys and read_document(path) is not None else None
            else:
                document = read_document(path)
                key = document.get("task_key") if document else None
            if key in keys:
                found[key] = str(path)
        return found


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def restore_nan(result: dict[str, Any]) -> dict[str, Any]:
    """Metric values written as null (NaN) come back as NaN."""
    nan = lambda v: math.nan if v is None else v  # noqa: E731
    return {**result, "metrics": {k: nan(v) for k, v in result["metrics"].items()},
            "step_metrics": {k: [(s, nan(v)) for s, v in series] for k, series in result["step_metrics"].items()}}
