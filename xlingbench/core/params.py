"""Typed task parameters: values from the command line, a notebook or a config, checked at the door.

Why here: a bad value must be refused before any model loads (one line, exit 2, nothing
logged), and it must be refused the same way whether it came from ``--set k=0``, from
``--languages en,de,fr`` or from ``xlingbench.evaluate(params=...)``. A task's parameter
dataclass declares the types (``int``, ``float``, ``bool``, ``str``, ``list[str]``,
``list[int]``, ``Literal[...]``) and may define ``validate(self)`` for ranges; this module
converts text to those types and turns every failure into a :class:`UserError` naming the
task, the parameter and the value.
"""
from __future__ import annotations

import dataclasses
import typing
from typing import Any, Literal, Mapping, get_args, get_origin

from xlingbench.core.errors import UserError

_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


def build(task: str, params_type: type, values: Mapping[str, Any]) -> Any:
    """An instance of ``params_type`` from its defaults and ``values`` (text or typed), validated."""
    hints = typing.get_type_hints(params_type)
    names = {f.name for f in dataclasses.fields(params_type)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise UserError(f"task '{task}' has no parameter '{unknown[0]}'.", f"Its parameters are: {', '.join(sorted(names))}.")
    converted = {name: convert(value, hints[name], f"{task}.{name}") for name, value in values.items()}
    params = params_type(**converted)
    check(task, params)
    return params


def check(task: str, params: Any) -> None:
    """Run the dataclass's own ``validate`` (ranges, combinations), as a UserError."""
    validate = getattr(params, "validate", None)
    if validate is None:
        return
    try:
        validate()
    except ValueError as err:
        raise UserError(f"{task}: {err}", f"Fix the value (see `xlingbench tasks --params`): --set {task}.NAME=VALUE.") from None


def convert(value: Any, hint: Any, where: str) -> Any:
    """``value`` as type ``hint``; text is parsed, typed values are checked."""
    origin = get_origin(hint)
    if origin is Literal:
        return _literal(value, get_args(hint), where)
    if origin is list:
        (item,) = get_args(hint)
        parts = _split(value) if isinstance(value, str) else list(value)
        return [convert(part, item, where) for part in parts]
    if hint is bool:
        return _bool(value, where)
    if hint in (int, float, str):
        return _scalar(value, hint, where)
    raise TypeError(f"{where}: parameter type {hint!r} is not supported")


def type_name(hint: Any) -> str:
    """How a parameter's type reads in `xlingbench tasks --params`."""
    origin = get_origin(hint)
    if origin is Literal:
        return "|".join(str(a) for a in get_args(hint))
    if origin is list:
        return f"list of {type_name(get_args(hint)[0])} (comma-separated)"
    return getattr(hint, "__name__", str(hint))


def describe(params_type: type) -> list[tuple[str, str, Any]]:
    """(name, type, default) of every parameter, in declaration order."""
    hints = typing.get_type_hints(params_type)
    return [(f.name, type_name(hints[f.name]), _default(f)) for f in dataclasses.fields(params_type)]


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return f.default


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _literal(value: Any, allowed: tuple[Any, ...], where: str) -> Any:
    text = value if not isinstance(value, str) else value.strip()
    if text in allowed:
        return text
    raise UserError(f"{where}={value!r} is not one of {', '.join(map(str, allowed))}.", f"Use one of: {', '.join(map(str, allowed))}.")


def _bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise UserError(f"{where}={value!r} is not true or false.", "Write true or false.")


def _scalar(value: Any, kind: type, where: str) -> Any:
    if isinstance(value, bool) and kind is not str:
        raise UserError(f"{where}={value!r} is not {_article(kind.__name__)}.", f"Give {_article(kind.__name__)}.")
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise UserError(f"{where}={value!r} is not a whole number.", "Give a whole number.")
    try:
        return kind(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise UserError(f"{where}={value!r} is not a valid {kind.__name__}.", f"Give {_article(kind.__name__)}.") from None


def _article(noun: str) -> str:
    """``an int``, ``a float``: the type's name as an error message says it."""
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"
