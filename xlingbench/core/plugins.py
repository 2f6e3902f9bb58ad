"""One loader for every kind of plugin: tasks, model sources and sinks, each an entry point group.

Why one: a misspelt name, or a plugin whose package fails to import, must read the same whatever
kind it is (one line naming the closest installed name, or the package to install), and listing
names must never import a plugin (``xlingbench tasks`` answers at once).
"""
from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from xlingbench.core.errors import UserError, did_you_mean


def plugin_names(group: str) -> list[str]:
    """The names registered under the entry point ``group``, sorted, without importing any.

    >>> "json" in plugin_names("xlingbench.sinks")
    True
    """
    return sorted({ep.name for ep in entry_points(group=group)})


def load_plugin(group: str, name: str, kind: str, fix: str) -> Any:
    """Import and return what ``name`` names in ``group``; a UserError (``unknown <kind> 'name'``
    with the closest name and ``fix``) for an unknown name, naming the package when it fails to import."""
    found = [ep for ep in entry_points(group=group) if ep.name == name]
    if not found:
        raise UserError(f"unknown {kind} '{name}'{did_you_mean(name, plugin_names(group))}.", fix)
    try:
        return found[0].load()
    except ImportError as exc:
        raise UserError(f"{kind} '{name}' could not be imported ({exc}).",
                        f"Install the package that provides it ({found[0].value}).") from exc
