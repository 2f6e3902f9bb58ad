"""What every task declares (metadata, parameters) and returns (a typed, serialisable result).

A task module defines ``TASK = Task(metadata=..., params=<dataclass>, run=<function>)`` and is
registered by name under the ``xlingbench.tasks`` entry point group. Task modules import torch,
sklearn and transformers inside functions only, so listing tasks stays instant.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Literal


@dataclass(frozen=True)
class TaskMetadata:
    """Who a task is, what its headline metric is, and what the papers published for it."""

    name: str
    description: str
    reference: str
    main_score: str
    version: str
    needs: Literal["embeddings", "hidden_states"]
    higher_is_better: bool = True
    #: published headline numbers, keyed by the registry name of the model (e.g. "xlm-roberta-xl")
    published: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Plot:
    """A picture of a result, rendered by :mod:`xlingbench.sinks.plots` (no plotting code in tasks).

    kind "bar": ``x`` are labels, ``y`` heights. kind "hist": ``y`` are the values to bin
    (``x`` unused or bin edges). kind "line": ``series`` maps a legend label to (x, y) lists.
    """

    name: str
    kind: Literal["bar", "hist", "line"]
    title: str
    xlabel: str
    ylabel: str
    x: list[Any] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    series: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)


@dataclass
class TaskResult:
    """Everything a task computed, in a shape every sink (MLflow, JSON, leaderboard) can take.

    ``metrics`` is flat and holds the headline under ``TaskMetadata.main_score``;
    ``step_metrics`` holds series logged with a step (a layer); ``intervals`` gives
    (low, high) for metrics with an uncertainty (bootstrap, CV folds), used by regression gating.
    """

    task: str
    params: dict[str, Any]
    metrics: dict[str, float]
    step_metrics: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    plots: list[Plot] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def to_json_dict(self) -> dict[str, Any]:
        """A plain dict for ``result.json``."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Task:
    """A registered task: its metadata, its parameter dataclass, and the function that runs it.

    ``run(inputs, params)`` takes a :class:`xlingbench.inputs.representations.Representations` (the
    model's cached representations) and an instance of ``params``; it returns a TaskResult.
    """

    metadata: TaskMetadata
    params: type
    run: Callable[[Any, Any], TaskResult]
