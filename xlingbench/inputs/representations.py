"""A model's representations as tasks consume them, loaded once and cached on disk.

Tasks receive a :class:`Representations` and ask it for what they need: the vocabulary with
its input embedding matrix (tasks 1-3), the full model for hidden states (tasks 4-5), or a
cached array computed from either. Every cache key includes the model id and its resolved
revision, so two checkpoints of one model never share an entry.
"""
from __future__ import annotations

import time
from functools import cached_property
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np

from xlingbench.inputs.cache import Cache
from xlingbench.inputs.vocab import Vocabulary, build_vocabulary

if TYPE_CHECKING:
    import torch

    from xlingbench.inputs.sources import ModelSource


class Representations:
    """Lazy, cached access to one model revision's tokenizer, embeddings and network."""

    def __init__(self, source: "ModelSource", cache: Cache, device: str = "cpu") -> None:
        self.source = source
        self.cache = cache
        self.device = device
        #: seconds spent per phase ("load", "extract"...), read by the runner after each task
        self.timings: dict[str, float] = {}
        self._stack: list[tuple[str, float]] = []

    @property
    def model_id(self) -> str:
        return self.source.model_id

    @property
    def revision(self) -> str:
        return self.source.revision

    def key(self, **parts: Any) -> dict[str, Any]:
        """Cache-key parts for this model revision plus ``parts``."""
        return {"model_id": self.model_id, "revision": self.revision, **parts}

    def cached(
        self, kind: str, parts: Mapping[str, Any], compute: Callable[[], Mapping[str, np.ndarray]]
    ) -> dict[str, np.ndarray]:
        """Arrays for ``parts`` of this model revision: from the cache, else computed and stored."""
        return self.cache.get_or_compute(kind, self.key(**parts), compute)

    @cached_property
    def tokenizer(self) -> Any:
        with self.timed("load"):
            return self.source.load_tokenizer()

    @cached_property
    def vocabulary(self) -> Vocabulary:
        """Token surface strings and the input embedding matrix (padding rows dropped)."""
        with self.timed("load"):
            arrays = self.cached("embeddings", {}, lambda: {"E": self.source.load_embedding_matrix()})
            return build_vocabulary(self.tokenizer, arrays["E"], self.model_id)

    @cached_property
    def model(self) -> "torch.nn.Module":
        """The network in eval mode on ``self.device`` (only tasks 4-5 need it)."""
        with self.timed("load"):
            return self.source.load_model().to(self.device).eval()

    def timed(self, phase: str) -> "_Timer":
        """Add the time spent inside the block to ``timings[phase]``.

        Phases are exclusive: while a nested phase runs (the model loads inside "extract"),
        the outer one's clock stops, so phase times add up to the wall time without overlap.
        """
        return _Timer(self, phase)


class _Timer:
    def __init__(self, owner: Representations, phase: str) -> None:
        self.owner, self.phase = owner, phase

    def __enter__(self) -> None:
        self._switch(push=self.phase)

    def __exit__(self, *exc: object) -> None:
        self._switch(push=None)

    def _switch(self, push: str | None) -> None:
        now = time.perf_counter()
        stack = self.owner._stack
        if stack:
            phase, started = stack[-1]
            self.owner.timings[phase] = self.owner.timings.get(phase, 0.0) + now - started
            if push is None:
                stack.pop()
        if push is not None:
            stack.append((push, now))
        elif stack:
            stack[-1] = (stack[-1][0], now)
