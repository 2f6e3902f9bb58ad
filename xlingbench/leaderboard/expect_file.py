"""The expect file of ``xlingbench check``: its format (JSON, or TOML by suffix), read and written.

Why apart from the rule (:mod:`xlingbench.leaderboard.gating`): what a committed file may say
(a bare number, or ``value`` with ``tolerance``, ``low``/``high``, ``higher_is_better``; each
task's pinned configuration under ``xlingbench.config``) is checked here once, so the rule only
ever sees valid :class:`~xlingbench.leaderboard.gating.Expectation` values.
"""
from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from xlingbench.core.errors import UserError
from xlingbench.leaderboard.gating import Expectation, default_tolerance, require_finite
from xlingbench.sinks.store import TaskRow

EXPECT_KEYS = {"value", "tolerance", "low", "high", "higher_is_better"}
#: the expect file's reserved top-level table: task -> configuration fingerprint the values were measured in
CONFIGS = "xlingbench.config"


def load_expectations(path: Path) -> tuple[dict[str, dict[str, Expectation]], dict[str, str]]:
    """Read and validate an expect file (JSON, or TOML by the ``.toml`` suffix): the expected
    values, and the configuration each task's values were measured in (where pinned)."""
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except OSError as err:
        raise UserError(f"cannot read expect file {path}: {err.strerror}.", "Pass an existing file to --expect.") from err
    except (ValueError, tomllib.TOMLDecodeError) as err:
        raise UserError(f"expect file {path} is not valid {'TOML' if path.suffix == '.toml' else 'JSON'}: {err}.",
                        "See docs/leaderboard.md for the format, or write one with --write-expect.") from err
    configs = data.pop(CONFIGS, {}) if isinstance(data, dict) else {}
    if not isinstance(data, dict) or not data:
        raise UserError(f"expect file {path} must map task names to metrics.", 'e.g. {"script_separability": {"accuracy": 0.95}}')
    if not isinstance(configs, dict) or not all(isinstance(v, str) for v in configs.values()):
        raise UserError(f"expect file {path}: {CONFIGS} must map task names to fingerprints (strings).",
                        "Copy them from the runs' xlingbench.config tags, or write the file with --write-expect.")
    expected = {task: {m: _expectation(path, task, m, e) for m, e in _table(path, task, metrics).items()} for task, metrics in data.items()}
    return expected, configs


def _table(path: Path, task: str, metrics: Any) -> dict[str, Any]:
    """A task's entry must be a non-empty table of metrics."""
    if not isinstance(metrics, dict) or not metrics:
        raise UserError(f"expect file {path}: {task!r} must map metric names to values.", 'e.g. {"accuracy": {"value": 0.95}}')
    return metrics


def _expectation(path: Path, task: str, metric: str, entry: Any) -> Expectation:
    """A bare number, or a table with ``value`` and optional tolerance/low/high/higher_is_better."""
    where = f"expect file {path}: {task}.{metric}"
    entry = {"value": entry} if _is_number(entry) else entry
    if not isinstance(entry, dict) or not _is_number(entry.get("value")) or set(entry) - EXPECT_KEYS:
        raise UserError(f"{where} is malformed.", f"Write a number or a table with keys from {sorted(EXPECT_KEYS)} ('value' required).")
    numbers = {k: entry.get(k) for k in ("tolerance", "low", "high")}
    if any(v is not None and not _is_number(v) for v in numbers.values()):
        raise UserError(f"{where}: tolerance, low and high must be numbers.", "Remove the quotes around them.")
    if ("low" in entry) != ("high" in entry):
        raise UserError(f"{where}: give both low and high, or neither.", "They are the interval the value may move in.")
    direction = entry.get("higher_is_better")
    if direction is not None and not isinstance(direction, bool):
        raise UserError(f"{where}: higher_is_better must be true or false.", "")
    require_finite(f"expect file {path}", f"{task}.{metric}", entry["value"], *numbers.values())
    return Expectation(float(entry["value"]), numbers["tolerance"], numbers["low"], numbers["high"], direction)


def _is_number(value: Any) -> bool:
    """An int or float, not a bool (JSON true must not pass as 1)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def expectations_of(rows: dict[str, TaskRow]) -> dict[str, dict[str, Any]]:
    """The headline of each task run as an expect-file entry (its interval where logged, else its
    unit's default tolerance, written out so the file says what it gates with), and each
    task's configuration under :data:`CONFIGS`; descriptive headlines are left out (never gated)."""
    out: dict[str, dict[str, Any]] = {}
    for task, row in sorted(rows.items()):
        if row.value is None or row.higher_is_better is None:
            continue
        out.setdefault(CONFIGS, {})[task] = row.config
        entry: dict[str, Any] = {"value": row.value, "higher_is_better": row.higher_is_better}
        low, high = row.metrics.get(f"{row.main_score}_ci_low"), row.metrics.get(f"{row.main_score}_ci_high")
        if low is not None and high is not None:
            entry.update(low=low, high=high)
        else:
            entry["tolerance"] = default_tolerance(task, row.main_score)
        out[task] = {row.main_score: entry}
    return out


def to_toml(data: dict[str, dict[str, Any]]) -> str:
    """The expect structure as TOML (keys quoted: metric names contain '/'): a table of plain
    values (the configurations) or of tables (a task's metrics) per top-level key."""
    blocks = []
    for name, table in data.items():
        plain = {k: v for k, v in table.items() if not isinstance(v, dict)}
        if plain:
            blocks.append(f"[{json.dumps(name)}]\n{_toml_body(plain)}\n")
        blocks += [f"[{json.dumps(name)}.{json.dumps(key)}]\n{_toml_body(entry)}\n" for key, entry in table.items() if isinstance(entry, dict)]
    return "\n".join(blocks)


def _toml_body(entry: dict[str, Any]) -> str:
    """``key = value`` lines (JSON scalars are valid TOML for strings, numbers and booleans)."""
    return "\n".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in sorted(entry.items()))
