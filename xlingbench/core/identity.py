"""What makes two results the same result: one canonical digest, used by every key.

Why one module: the cache keys of arrays, the task key a rerun skips by and the configuration
fingerprint runs are compared by were hashed three ways, with ``json.dumps(..., default=str)``:
a value that is not JSON (a path, a numpy number, an object) was hashed by its ``repr``, which
changes between versions and machines, and the task key hashed the *requested* dtype (``auto``)
while the fingerprint hashed the resolved one. Here every key goes through :func:`digest`,
which refuses anything that is not a JSON value, and both the task key and the fingerprint
take the resolved dtype and the device kind.

Device kind (``cpu`` or ``cuda``): a computation that is not bit-identical across devices
(K-means draws its random numbers on the device; the torch probe and a model's forward pass
round differently on a GPU) gives another number on another device. So the device kind is in
every cache key derived from a model revision (``Representations.key``), in the task key and in
the fingerprint of every task, except a task that declares ``TaskMetadata.device_independent``
(its number is proven the same on every device). Data read from files (corpora, dictionaries,
induced alignments, all computed with numpy on the CPU) is keyed without it.
"""
from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

from xlingbench.core.task import TaskMetadata

#: characters of each kind of key (hex digits of a SHA-256)
CACHE_KEY_LENGTH = 24
TASK_KEY_LENGTH = 32
FINGERPRINT_LENGTH = 16
#: the device kinds xlingbench runs on; ``cuda:1`` is of kind ``cuda``
DEVICE_KINDS = ("cpu", "cuda")


def canonical(parts: Mapping[str, Any]) -> str:
    """``parts`` as one canonical JSON text (sorted keys, no spaces, UTF-8 kept).

    Refuses (TypeError) any value that is not a JSON type (str, int, float, bool, None, list,
    tuple, dict with str keys) and (ValueError) a NaN or infinite float: such a value would be
    hashed by its ``repr``, or not equal to itself, and two equal configurations would get two keys.

    >>> canonical({"b": [1, 2.5], "a": "é"})
    '{"a":"é","b":[1,2.5]}'
    """
    _check(parts, "parts")
    return json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def digest(parts: Mapping[str, Any], length: int = TASK_KEY_LENGTH) -> str:
    """The first ``length`` hex digits of the SHA-256 of :func:`canonical` ``(parts)``.

    >>> digest({"k": 1}, 8) == digest({"k": 1}, 8) != digest({"k": 2}, 8)
    True
    """
    return hashlib.sha256(canonical(parts).encode("utf-8")).hexdigest()[:length]


def device_kind(device: str) -> str:
    """``cpu`` or ``cuda`` for a torch device string (``cuda:1`` -> ``cuda``); ValueError otherwise.

    >>> device_kind("cuda:1")
    'cuda'
    """
    kind = device.split(":", 1)[0]
    if kind not in DEVICE_KINDS:
        raise ValueError(f"device {device!r} is of no known kind ({', '.join(DEVICE_KINDS)})")
    return kind


def task_key(model: str, revision: str, step: int | None, task: TaskMetadata, params: Mapping[str, Any],
             dtype: str, device: str) -> str:
    """What decides a task run's number that is known before it runs: the model, its resolved
    revision and step, the task and its version, its typed parameters, the resolved dtype and
    (unless the task is device-independent) the device kind. A rerun skips a key a store holds."""
    parts = {"model": model, "revision": revision, "step": step, "task": task.name, "version": task.version,
             "params": dict(params), "dtype": dtype, **_device_part(task, device)}
    return digest(parts, TASK_KEY_LENGTH)


def fingerprint(task: TaskMetadata, params: Mapping[str, Any], inputs: Mapping[str, Any], dtype: str,
                device: str, unidata_version: str, quantisation: Mapping[str, str] | None = None) -> str:
    """The configuration fingerprint: everything that decides the number except the model and its
    revision (the task and its version, every parameter, the fingerprints of the data it read,
    the resolved dtype, the Unicode version and, unless device-independent, the device kind; a
    quantised file's types, when the weights are one: a Q4 GGUF and its bf16 checkpoint are two
    configurations). Runs are comparable only when it is equal."""
    parts = {"task": task.name, "version": task.version, "params": dict(params), "inputs": dict(inputs),
             "dtype": dtype, "unidata_version": unidata_version, **_device_part(task, device)}
    if quantisation:
        parts["quantisation"] = dict(quantisation)
    return digest(parts, FINGERPRINT_LENGTH)


def _device_part(task: TaskMetadata, device: str) -> dict[str, str]:
    return {} if task.device_independent else {"device": device_kind(device)}


def _check(value: Any, where: str) -> None:
    """Raise for the first value under ``value`` that is not a JSON value, naming where it is."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} is {value!r}: a key cannot hold NaN or infinity")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where} has the key {key!r} ({type(key).__name__}): a key's names must be str")
            _check(item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check(item, f"{where}[{index}]")
    elif value is not None and type(value) not in (str, int, float, bool):
        raise TypeError(f"{where} is a {type(value).__name__} ({value!r}), not a JSON value: convert it "
                        "(str(path), int(number)) before it goes into a key")
