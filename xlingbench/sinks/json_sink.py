"""The JSON sink: one file per model revision and task, ``<dir>/<model>/<revision>/<task>.json``.

Why: a result a script can read with nothing but ``json.load`` (no MLflow store), kept on local
disk before and whatever any other sink does. Each file carries ``schema_version``; a change
to the layout bumps it. Files are written atomically (a crash leaves the old file or the new),
so a file that exists is a finished result: ``finished`` reads the task keys back from them.
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
from xlingbench.sinks import TASK_KEY, SinkSettings

SCHEMA_VERSION = 1
_UNSAFE = re.compile(r"[^\w.@+-]")


def path_part(text: str) -> str:
    """``text`` as one safe path component (a Hub id's ``/`` becomes ``__``)."""
    return _UNSAFE.sub("_", text.replace("/", "__")) or "_"


def result_path(root: Path, outcome: Outcome) -> Path:
    """Where the result of ``outcome`` is written under ``root``."""
    model = outcome.model
    return root / path_part(model.name) / path_part(model.revision) / f"{path_part(outcome.task.name)}.json"


def to_document(outcome: Outcome) -> dict[str, Any]:
    """The JSON document of one outcome (NaN and infinities as null: JSON has neither)."""
    document = {
        "schema_version": SCHEMA_VERSION,
        "model": dataclasses.asdict(outcome.model),
        "task": {"name": outcome.task.name, "version": outcome.task.version, "main_score": outcome.task.main_score,
                 "higher_is_better": outcome.task.higher_is_better},
        "fingerprint": outcome.fingerprint,
        "task_key": outcome.result.info.get(TASK_KEY),
        "started": outcome.started,
        "ended": outcome.ended,
        "result": outcome.result.to_json_dict(),
    }
    return _finite(document)


def from_document(document: dict[str, Any], metadata: TaskMetadata) -> Outcome:
    """An Outcome back from :func:`to_document` (with the task's metadata from the registry)."""
    if document.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"result schema_version {document.get('schema_version')!r} is not {SCHEMA_VERSION}")
    result = TaskResult.from_json_dict(_restore_nan(document["result"]))
    return Outcome(ModelRevision(**document["model"]), metadata, result, document["started"], document["ended"],
                   document["fingerprint"])


class JsonSink:
    """Writes each outcome as a JSON file under ``settings.results_dir``."""

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
        for path in sorted(self.root.glob("*/*/*.json")):
            try:
                key = json.loads(path.read_text(encoding="utf-8")).get("task_key")
            except (OSError, ValueError, AttributeError):
                continue
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


def _restore_nan(result: dict[str, Any]) -> dict[str, Any]:
    """Metric values written as null (NaN) come back as NaN."""
    nan = lambda v: math.nan if v is None else v  # noqa: E731
    return {**result, "metrics": {k: nan(v) for k, v in result["metrics"].items()},
            "step_metrics": {k: [(s, nan(v)) for s, v in series] for k, series in result["step_metrics"].items()}}
