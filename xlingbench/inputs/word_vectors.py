"""Per-word hidden states of every layer, streamed to disk and cached: the input of tasks 4-5.

Why this shape: the published pipeline kept activations as JSON and needed 500 GB of RAM. Here
a word's vector at layer l (0 = embedding output .. L) is the hidden state of one of its
subwords (``last`` by default, as published; ``first`` or ``mean`` on request), written as it
is computed into float16 ``.npy`` memmaps sized up front, so memory stays flat however long the
corpus. Special tokens never give a vector.

Reading: each sentence is tokenised whole, as the model was trained to read text, with the
tokenizer's own pre-tokenisation (tokenising word by word would put a word-start marker before
every word: +62% subwords in Chinese). Subwords are mapped to words by character offsets: a
subword belongs to the word holding the first word character it covers, so one that straddles
two words belongs to the word where it starts, and one made of whitespace only (a lone ``▁``)
belongs to none. A word left without a subword of its own gets no vector and is counted
(``info["words_without_subwords"]``).

Long sentences: when a sentence has more subwords than fit in ``max_length`` (with the special
tokens), it is read in overlapping windows of that size, each starting half a window after the
previous one. A word's vector comes from the window holding all its subwords where it has the
most context: the larger min(subwords before it, subwords after it) in the window for
bidirectional states, the larger number of subwords before it for states that see only the left
(causal, teacher-forced decoder); ties go to the earlier window. A word in no window whole
(longer than half a window) is lost and counted (``info["words_lost"]``). ``max_length`` is
capped at what the model reads: its tokenizer's ``model_max_length`` and the network's position
embeddings (``max_position_embeddings``, less the positions a RoBERTa-style embedding reserves
below its padding index: XLM-R's 514 give 512). So the default 512 works on a model with fewer
positions instead of failing inside the network; ``info["max_length_read"]`` records the cap.

Overflow: vectors are stored as float16 by default, whose largest value is 65,504; some models'
hidden states go beyond it (Gemma's residual stream reaches hundreds of thousands), and a cast
would write infinities. So every batch is checked before it is written: a layer whose values
do not fit float16 is widened to float32 on disk (its file rewritten, rows already written
copied exactly) and stays float32; ``info["widened_layers"]`` names those layers. float32, not
bfloat16: numpy has no bfloat16, and a memory-mapped layer must be a numpy array.

Disk: the layer arrays are allocated on disk when the extraction starts (``posix_fallocate``), so
a disk without room for them is one line naming the cache directory, before any batch runs,
and never a bus error halfway through writing a memory-mapped file.

The work is cut into shards of sentences inside ``<entry>.partial``; after each shard the
arrays are flushed and a progress marker is replaced atomically, so an interrupted run resumes
at the last finished shard. The finished directory becomes the cache entry with one
``os.replace``: an entry is complete or absent, never half-written. The cache key holds the
model revision and the dtype the model runs in (a bfloat16 model's states are widened to float32
before words are averaged), layer set, aggregation, side, storage dtype, max_length, language and a hash of the
texts and word spans given: nothing about other languages, so a language's vectors are computed
once and shared by every pair it is in. ``batch_size`` and ``shard_size`` change only how the
work is grouped (results agree to float rounding), so they are not in the key.

Which states: encoder models, and encoder-decoder models by default, give bidirectional encoder
states. ``side="decoder"`` on an encoder-decoder model teacher-forces the decoder on the
sentence shifted right behind the decoder start token, with an empty encoder input, so the
state at position i has seen the tokens before i only (recorded in ``info["context"]``).
Decoder-only models give their causal states (position i has seen tokens up to i).
"""
from __future__ import annotations

import hashlib
import json
import shutil
from array import array
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np

from xlingbench.core.errors import UserError
from xlingbench.core.progress import progress
from xlingbench.inputs.cache import allocate, disk_space, require_space, write_atomic
from xlingbench.inputs.parallel_data import Span, spaced

if TYPE_CHECKING:
    import torch

    from xlingbench.inputs.representations import Representations

KIND = "word_vectors"
AGGREGATIONS = ("last", "first", "mean")
SIDES = ("encoder", "decoder")
DTYPES = ("float16", "float32")
_FORMAT = 3  # bump when the entry layout or the reading rules change, so old entries are not reused
_MARKER = "progress.json"
_INFO = "info.json"
_CONTEXT = {
    "encoder": "bidirectional: each state has seen the whole sentence (or its window)",
    "decoder": "teacher-forced decoder with an empty encoder input: the state at position i has seen tokens before i only",
    "causal": "causal decoder-only model: the state at position i has seen tokens up to and including i",
}
#: tokenizers without a real limit report a huge model_max_length; below this it is a limit
_REAL_LIMIT = 10**6

Forward = Callable[["torch.Tensor", "torch.Tensor"], Sequence["torch.Tensor"]]


@dataclass
class WordVectors:
    """Row i is word ``words[i]``, word ``word_positions[i]`` of sentence ``sentence_ids[i]``.

    ``rows`` (when not None) are the stored rows shown, in order: set by :meth:`select`.
    """

    words: list[str]
    sentence_ids: np.ndarray
    word_positions: np.ndarray
    num_layers: int
    directory: Path
    info: dict[str, Any]
    rows: np.ndarray | None = None

    def layer(self, layer: int) -> np.ndarray:
        """Vectors of layer ``layer`` (0 = embedding output), n_words x d (memory-mapped unless selected)."""
        if not 0 <= layer < self.num_layers:
            raise IndexError(f"layer {layer} is out of range 0..{self.num_layers - 1}")
        stored = np.load(self.directory / _layer_file(layer), mmap_mode="r", allow_pickle=False)
        return stored if self.rows is None else stored[self.rows]

    def select(self, sentences: Sequence[int]) -> "WordVectors":
        """The words of ``sentences`` (distinct ids of this one's sentences), renumbered 0.. in that order.

        Why: vectors are extracted once per language over all its lines; a corpus that dropped
        some lines (too long in another language) picks its aligned sentences here.
        """
        wanted = np.asarray(sentences, dtype=np.int64)
        ids = np.asarray(self.sentence_ids, dtype=np.int64)
        lookup = np.full(int(max(wanted.max(initial=-1), ids.max(initial=-1))) + 1, -1, dtype=np.int64)
        lookup[wanted] = np.arange(len(wanted))
        new_ids = lookup[ids]
        picked = np.flatnonzero(new_ids >= 0)
        picked = picked[np.argsort(new_ids[picked], kind="stable")]
        everything = self.rows is None and np.array_equal(picked, np.arange(len(ids)))
        rows = None if everything else picked if self.rows is None else self.rows[picked]
        return WordVectors([self.words[i] for i in picked.tolist()], new_ids[picked], np.asarray(self.word_positions)[picked],
                           self.num_layers, self.directory, self.info, rows)


@dataclass(frozen=True)
class _Window:
    """One forward pass: special tokens around a stretch of one sentence's subwords, and the
    words whose vector it gives."""

    sentence: int
    input_ids: list[int]
    ranks: list[int]  # each word's rank among its sentence's words with a vector: its row there
    tokens: list[list[int]]  # each word's subword positions in input_ids


@dataclass(frozen=True)
class _Encoded:
    """One sentence read: its windows, the positions of its words with a vector, the words lost."""

    windows: list[_Window]
    positions: list[int]
    lost: int
    subwordless: int


def extract_word_vectors(
    inputs: "Representations",
    sentences: list[list[str]],
    *,
    language: str,
    texts: list[str] | None = None,
    spans: list[list[Span]] | None = None,
    aggregation: str = "last",
    side: str = "encoder",
    batch_size: int = 16,
    max_length: int = 512,
    dtype: str = "float16",
    shard_size: int = 256,
) -> WordVectors:
    """Word vectors of ``sentences`` (lists of words) at every layer, from the cache when there.

    ``texts[i]`` is what the model reads for sentence i and ``spans[i][j]`` the [start, end) of
    word ``sentences[i][j]`` in it; without them, the words joined by single spaces (how
    pre-tokenised text reads). ``shard_size`` sentences are finished between two progress
    markers (resume granularity).
    """
    _check_options(sentences, aggregation, dtype, language, batch_size=batch_size, max_length=max_length, shard_size=shard_size)
    texts, spans = _texts_and_spans(sentences, texts, spans)
    side = _effective_side(inputs.source.arch, side)
    key = inputs.key(
        layers="all", aggregation=aggregation, side=side, dtype=dtype, max_length=max_length,
        language=language, text_sha256=_text_hash(texts, spans), format=_FORMAT,
    )
    # under the entry's lock: a second process extracting the same vectors waits, then reads them
    with inputs.cache.lock(KIND, key) as entry:
        if not inputs.cache.is_complete(KIND, key):
            model, tokenizer = inputs.model, inputs.tokenizer  # loading is timed as "load"
            with inputs.timed("extract"):
                forward = _forward_fn(model, tokenizer, side, inputs.source.arch == "encoder-decoder", inputs.device)
                reader = _Reader(tokenizer, min(max_length, model_positions(model)), causal=side != "encoder")
                _compute(forward, inputs.device, reader, texts, spans, key, entry, aggregation, dtype, batch_size, shard_size)
                inputs.cache.publish(Path(f"{entry}.partial"), KIND, key)
    return _open(entry, sentences)


def _check_options(sentences: list[list[str]], aggregation: str, dtype: str, language: str, **sizes: int) -> None:
    """Every option checked before anything is loaded or computed (a bad size once published zeros)."""
    if aggregation not in AGGREGATIONS:
        raise UserError(f"Unknown word aggregation {aggregation!r}.", f"Use one of {AGGREGATIONS}.")
    if dtype not in DTYPES:
        raise UserError(f"Unknown storage dtype {dtype!r} for word vectors.", f"Use one of {DTYPES}.")
    for name, value in sizes.items():
        if not isinstance(value, int) or value < 1:
            raise UserError(f"{name}={value!r} for word vectors is not a positive integer.", f"Set {name} to 1 or more.")
    if not sentences:
        raise UserError(f"No sentences to extract word vectors from for language {language!r}.", "Check the parallel data for that language.")


def _texts_and_spans(
    sentences: list[list[str]], texts: list[str] | None, spans: list[list[Span]] | None
) -> tuple[list[str], list[list[Span]]]:
    """The texts and word spans to read, checked against the words (a mismatch is a caller's bug)."""
    if texts is None and spans is None:
        pairs = [spaced(words) for words in sentences]
        return [text for text, _ in pairs], [s for _, s in pairs]
    if texts is None or spans is None or not len(texts) == len(spans) == len(sentences):
        raise ValueError("texts and spans must be given together, one per sentence")
    for i, (words, text, line_spans) in enumerate(zip(sentences, texts, spans)):
        previous_end = 0
        for word, (a, b) in zip(words, line_spans, strict=True):
            if a < previous_end or b <= a or text[a:b] != word:
                raise ValueError(f"sentence {i}: span {(a, b)} does not hold word {word!r} after the previous word")
            previous_end = b
    return texts, spans


def _text_hash(texts: list[str], spans: list[list[Span]]) -> str:
    """sha256 of what is read (texts and word spans, which fix the words): the data part of the key."""
    digest = hashlib.sha256()
    for text, line_spans in zip(texts, spans):
        digest.update((text + "\x00" + ",".join(f"{a}:{b}" for a, b in line_spans) + "\n").encode("utf-8"))
    return digest.hexdigest()


def _effective_side(arch: str, side: str) -> str:
    """Which states are taken: "encoder", "decoder" (teacher-forced) or "causal" (decoder-only)."""
    if side not in SIDES:
        raise UserError(f"Unknown side {side!r}.", f"Use one of {SIDES}.")
    if arch == "decoder":
        return "causal"
    if arch == "encoder" and side == "decoder":
        raise UserError("An encoder-only model has no decoder side.", "Use side=encoder for this model.")
    return side


# ---------------------------------------------------------------- model calls


def _forward_fn(model: Any, tokenizer: Any, side: str, encoder_decoder: bool, device: str) -> Forward:
    """A function (input_ids, attention_mask) -> hidden states of layers 0..L for ``side``."""
    if side == "decoder":
        return _teacher_forced(model, tokenizer, device)
    module = model.get_encoder() if encoder_decoder else model

    def forward(ids: "torch.Tensor", mask: "torch.Tensor") -> Sequence["torch.Tensor"]:
        return _hidden_states(module(input_ids=ids, attention_mask=mask, output_hidden_states=True), "hidden_states", model)

    return forward


def _teacher_forced(model: Any, tokenizer: Any, device: str) -> Forward:
    """Decoder states with the sentence as decoder input (shifted right) and an empty source."""
    import torch

    start = _decoder_start(model)
    source = torch.tensor([tokenizer("")["input_ids"] or [start]], device=device)

    def forward(ids: "torch.Tensor", mask: "torch.Tensor") -> Sequence["torch.Tensor"]:
        shifted = torch.cat([torch.full_like(ids[:, :1], start), ids[:, :-1]], dim=1)
        out = model(
            input_ids=source.expand(len(ids), -1), attention_mask=torch.ones_like(source).expand(len(ids), -1),
            decoder_input_ids=shifted, decoder_attention_mask=mask, output_hidden_states=True,
        )
        return _hidden_states(out, "decoder_hidden_states", model)

    return forward


def _decoder_start(model: Any) -> int:
    """The decoder start token: from the config, else the generation config (transformers v5)."""
    for holder in (model.config, getattr(model, "generation_config", None)):
        start = getattr(holder, "decoder_start_token_id", None)
        if start is not None:
            return int(start)
    raise UserError(
        f"{type(model).__name__} declares no decoder_start_token_id, so its decoder cannot be teacher-forced.",
        "Set decoder_start_token_id in the model's config, or use side=encoder.",
    )


def _hidden_states(out: Any, attribute: str, model: Any) -> Sequence["torch.Tensor"]:
    states = getattr(out, attribute, None)
    if states is None:
        raise UserError(
            f"{type(model).__name__} returned no {attribute} with output_hidden_states=True.",
            "Load the model with a transformers class that returns hidden states (AutoModel).",
        )
    return states


def _probe(forward: Forward, ids: list[int], device: str) -> tuple[int, int]:
    """Number of layers (L+1) and hidden size, from one sentence; fails early on unfit models."""
    import torch

    tensor = torch.tensor([ids], device=device)
    try:
        states = forward(tensor, torch.ones_like(tensor))
    except TypeError as exc:  # the forward does not accept output_hidden_states / attention_mask
        raise UserError(f"The model cannot give hidden states ({exc}).", "Use a transformers model (AutoModel) that supports output_hidden_states.") from exc
    return len(states), int(states[0].shape[-1])


# ---------------------------------------------------------------- tokenisation


def model_positions(model: Any) -> int:
    """How many tokens the network reads at once: ``max_position_embeddings`` less the positions a
    RoBERTa-style embedding reserves up to its padding index; no limit for relative positions (T5)."""
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if not isinstance(limit, int):
        return _REAL_LIMIT
    padding = getattr(getattr(model, "embeddings", None), "padding_idx", None)
    return limit - (padding + 1 if isinstance(padding, int) else 0)


class _Reader:
    """Reads sentences into model windows: the tokenizer, max_length and which context counts."""

    def __init__(self, tokenizer: Any, max_length: int, causal: bool) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise UserError("Word vectors need a fast (Rust) tokenizer for character offsets.", "Load the model's tokenizer with use_fast=True.")
        limit = getattr(tokenizer, "model_max_length", None)
        if isinstance(limit, int) and limit < _REAL_LIMIT:
            max_length = min(max_length, limit)  # the module docstring: capped at what the model reads
        self.tokenizer, self.max_length, self.causal = tokenizer, max_length, causal

    def encode(self, index: int, text: str, spans: list[Span]) -> _Encoded:
        """Sentence ``index``: its windows and which words each gives a vector of (module docstring)."""
        encoding = self.tokenizer(text, return_offsets_mapping=True, return_special_tokens_mask=True)
        ids, special = list(encoding["input_ids"]), encoding["special_tokens_mask"]
        body = [t for t, flag in enumerate(special) if not flag]
        first, end = (body[0], body[-1] + 1) if body else (len(ids), len(ids))
        prefix, content, suffix = ids[:first], ids[first:end], ids[end:]
        capacity = self.max_length - len(prefix) - len(suffix)
        if capacity < 1:
            raise UserError(f"max_length={self.max_length} leaves no room beside the {len(prefix) + len(suffix)} special tokens.", "Set max_length to 8 or more.")
        word_tokens: dict[int, list[int]] = {}
        for t, word in enumerate(_owners(encoding["offset_mapping"][first:end], spans)):
            if word is not None:
                word_tokens.setdefault(word, []).append(t)
        starts = _window_starts(len(content), capacity)
        chosen = {w: self._best_window(tokens, starts, capacity, len(content)) for w, tokens in sorted(word_tokens.items())}
        positions = [w for w, k in chosen.items() if k is not None]
        windows = []
        for k, start in enumerate(starts):
            members = [(rank, w) for rank, w in enumerate(positions) if chosen[w] == k]
            if members:
                shift = len(prefix) - start
                windows.append(_Window(index, prefix + content[start : start + capacity] + suffix,
                                       [rank for rank, _ in members], [[t + shift for t in word_tokens[w]] for _, w in members]))
        return _Encoded(windows, positions, len(chosen) - len(positions), len(spans) - len(word_tokens))

    def _best_window(self, tokens: list[int], starts: list[int], capacity: int, length: int) -> int | None:
        """The window holding all of ``tokens`` where they have the most context; None if none holds them."""
        best, most = None, -1
        for k, start in enumerate(starts):
            end = min(start + capacity, length)
            if start <= tokens[0] and tokens[-1] < end:
                before, after = tokens[0] - start, end - 1 - tokens[-1]
                context = before if self.causal else min(before, after)
                if context > most:
                    best, most = k, context
        return best


def _owners(offsets: Sequence[tuple[int, int]], spans: list[Span]) -> list[int | None]:
    """Per subword, the word holding the first word character it covers (None: whitespace only)."""
    ends = [b for _, b in spans]
    owners: list[int | None] = []
    for a, b in offsets:
        word = bisect_right(ends, a)  # the first word ending after the subword starts
        owners.append(word if a < b and word < len(spans) and spans[word][0] < b else None)
    return owners


def _window_starts(length: int, capacity: int) -> list[int]:
    """Where the windows of a ``length``-subword sentence start: every half window until the end is in one."""
    starts = [0]
    while starts[-1] + capacity < length:
        starts.append(starts[-1] + max(1, capacity // 2))
    return starts


# ---------------------------------------------------------------- the streamed computation


def _compute(
    forward: Forward, device: str, reader: _Reader, texts: list[str], spans: list[list[Span]], key: dict[str, Any],
    entry: Path, aggregation: str, dtype: str, batch_size: int, shard_size: int,
) -> None:
    """Fill ``<entry>.partial`` shard by shard (resuming when it is there) and finish it."""
    import torch

    plan = _plan(reader, texts, spans, key["language"])
    partial = Path(f"{entry}.partial")
    marker = _read_marker(partial, plan)
    if marker is None:
        probe = plan["probe"]
        first = reader.encode(probe, texts[probe], spans[probe]).windows[0]
        with torch.inference_mode():
            layers, hidden = _probe(forward, first.input_ids, device)
        marker = _start_partial(partial, plan, layers, hidden, dtype)
    store = [np.load(partial / _layer_file(l), mmap_mode="r+") for l in range(marker["layers"])]
    offsets = np.load(partial / "offsets.npy")
    batches = _batches(reader, texts, spans, marker["done"], batch_size, shard_size)
    windows = np.frombuffer(plan["windows"], dtype=np.int64)
    total = sum(-(-int(windows[s : s + shard_size].sum()) // batch_size) for s in range(marker["done"], len(texts), shard_size))
    pad = reader.tokenizer.pad_token_id if reader.tokenizer.pad_token_id is not None else 0
    with torch.inference_mode():
        for shard_end, batch in progress(batches, desc=f"word vectors {key['language']}", total=total, unit="batch"):
            marker["nonfinite"] += _write_batch(forward, device, batch, store, offsets, aggregation, pad,
                                                widen=lambda layer: _widen(partial, store, layer))
            if shard_end is not None:
                for array_ in store:
                    array_.flush()
                marker["done"] = shard_end
                _write_json(partial / _MARKER, marker)
    del store
    _finish(partial, key, plan, marker, aggregation)


def _plan(reader: _Reader, texts: list[str], spans: list[list[Span]], language: str) -> dict[str, Any]:
    """Count the words that will get a vector (to size the arrays) and the windows, sentence by sentence."""
    kept, positions, windows = array("q"), array("q"), array("q")  # compact: 8 bytes an entry, not a Python int
    lost = subwordless = windowed = 0
    probe = None
    for index, (text, line_spans) in enumerate(zip(texts, spans)):
        encoded = reader.encode(index, text, line_spans)
        kept.append(len(encoded.positions))
        positions.extend(encoded.positions)
        windows.append(len(encoded.windows))
        lost += encoded.lost
        subwordless += encoded.subwordless
        windowed += len(encoded.windows) > 1
        if probe is None and encoded.windows:
            probe = index
    if probe is None:
        raise UserError(f"No word of the {len(texts)} sentences of language {language!r} has a subword.", "Check the parallel data for that language.")
    return {
        "sentences": len(texts), "rows": len(positions), "kept": kept, "positions": positions, "windows": windows,
        "probe": probe, "max_length_read": reader.max_length, "words_lost": lost, "words_without_subwords": subwordless, "windowed_sentences": windowed,
    }


def _read_marker(partial: Path, plan: dict[str, Any]) -> dict[str, Any] | None:
    """The progress of an interrupted run of the same plan, or None (then start afresh)."""
    try:
        marker = json.loads((partial / _MARKER).read_text())
    except (OSError, ValueError):
        return None
    if marker.get("sentences") != plan["sentences"] or marker.get("rows") != plan["rows"]:
        return None
    return marker


def _start_partial(partial: Path, plan: dict[str, Any], layers: int, hidden: int, dtype: str) -> dict[str, Any]:
    """Create the arrays at full size, with row bookkeeping, and a marker saying nothing is done."""
    shutil.rmtree(partial, ignore_errors=True)
    with disk_space(partial.parent, remove=partial):
        partial.mkdir(parents=True)
        kept = np.frombuffer(plan["kept"], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(kept)]).astype(np.int64)
        require_space(partial, (len(offsets) + 2 * plan["rows"]) * 8 + layers * plan["rows"] * hidden * np.dtype(dtype).itemsize)
        np.save(partial / "offsets.npy", offsets)
        np.save(partial / "sentence_ids.npy", np.repeat(np.arange(len(kept), dtype=np.int64), kept))
        np.save(partial / "word_positions.npy", np.frombuffer(plan["positions"], dtype=np.int64))
        for layer in range(layers):
            np.lib.format.open_memmap(partial / _layer_file(layer), mode="w+", dtype=dtype, shape=(plan["rows"], hidden)).flush()
            allocate(partial / _layer_file(layer))
    marker = {"sentences": plan["sentences"], "rows": plan["rows"], "layers": layers, "hidden": hidden, "done": 0, "nonfinite": 0}
    _write_json(partial / _MARKER, marker)
    return marker


def _batches(
    reader: _Reader, texts: list[str], spans: list[list[Span]], start: int, batch_size: int, shard_size: int
) -> Iterator[tuple[int | None, list[_Window]]]:
    """Batches of windows of similar length within each shard; the last batch of a shard carries its end."""
    for shard_start in range(start, len(texts), shard_size):
        shard_end = min(shard_start + shard_size, len(texts))
        windows = [w for i in range(shard_start, shard_end) for w in reader.encode(i, texts[i], spans[i]).windows]
        windows.sort(key=lambda w: len(w.input_ids))
        if not windows:
            yield shard_end, []
        for b in range(0, len(windows), batch_size):
            yield (shard_end if b + batch_size >= len(windows) else None), windows[b : b + batch_size]


def _write_batch(
    forward: Forward, device: str, batch: list[_Window], store: list[np.ndarray], offsets: np.ndarray, aggregation: str, pad: int,
    widen: Callable[[int], None] = lambda layer: None,
) -> int:
    """One forward pass; each word's vector at every layer into its row (a layer whose values do
    not fit its storage dtype is first ``widen``-ed). Returns #non-finite values written."""
    import torch

    if not batch:
        return 0
    width = max(len(w.input_ids) for w in batch)
    ids = torch.full((len(batch), width), pad, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for b, window in enumerate(batch):
        ids[b, : len(window.input_ids)] = torch.tensor(window.input_ids)
        mask[b, : len(window.input_ids)] = 1
    token_b, token_t, owner, rows = _selection(batch, offsets, aggregation)
    states = forward(ids.to(device), mask.to(device))
    picked = torch.stack([s[token_b, token_t] for s in states]).float()  # (L+1, tokens, d)
    owner_t = torch.tensor(owner, device=picked.device)
    sums = torch.zeros(picked.shape[0], len(rows), picked.shape[2], device=picked.device).index_add_(1, owner_t, picked)
    counts = torch.bincount(owner_t, minlength=len(rows)).to(sums.dtype)
    vectors = (sums / counts[None, :, None]).cpu().numpy()
    row_index = np.asarray(rows)
    nonfinite = 0
    for layer in range(len(store)):
        if not fits(vectors[layer], store[layer].dtype):
            widen(layer)
        stored = vectors[layer].astype(store[layer].dtype)
        store[layer][row_index] = stored
        nonfinite += int(np.count_nonzero(~np.isfinite(stored)))
    return nonfinite


def fits(values: np.ndarray, dtype: np.dtype) -> bool:
    """Whether the finite ``values`` stay finite in ``dtype`` (float16 ends at 65,504)."""
    finite = values[np.isfinite(values)]
    return finite.size == 0 or float(np.abs(finite).max()) <= float(np.finfo(dtype).max)


def _widen(partial: Path, store: list[np.ndarray], layer: int) -> None:
    """Rewrite layer ``layer`` of ``partial`` as float32 (rows copied exactly), replacing the file atomically."""
    old = store[layer]
    if old.dtype == np.float32:
        return
    old.flush()
    path = partial / _layer_file(layer)
    staging = path.with_suffix(".float32.npy")
    with disk_space(partial):
        require_space(partial, old.shape[0] * old.shape[1] * 4)
        wide = np.lib.format.open_memmap(staging, mode="w+", dtype=np.float32, shape=old.shape)
        for start in range(0, old.shape[0], 1 << 16):
            wide[start : start + (1 << 16)] = old[start : start + (1 << 16)]
        wide.flush()
        del wide
    staging.replace(path)  # the float16 map stays valid until it is dropped (POSIX keeps the old file)
    store[layer] = np.load(path, mmap_mode="r+")


def _selection(batch: list[_Window], offsets: np.ndarray, aggregation: str) -> tuple[list[int], list[int], list[int], list[int]]:
    """Tokens to read (batch index, position), the output word each belongs to, and its row."""
    token_b: list[int] = []
    token_t: list[int] = []
    owner: list[int] = []
    rows: list[int] = []
    for b, window in enumerate(batch):
        for rank, tokens in zip(window.ranks, window.tokens):
            chosen = {"last": tokens[-1:], "first": tokens[:1], "mean": tokens}[aggregation]
            token_b += [b] * len(chosen)
            token_t += chosen
            owner += [len(rows)] * len(chosen)
            rows.append(int(offsets[window.sentence]) + rank)
    return token_b, token_t, owner, rows


def _finish(partial: Path, key: dict[str, Any], plan: dict[str, Any], marker: dict[str, Any], aggregation: str) -> None:
    """Write the entry's info and drop the resume bookkeeping; the caller then publishes it."""
    info = {
        "side": key["side"], "aggregation": aggregation, "dtype": key["dtype"], "max_length": key["max_length"],
        "max_length_read": plan["max_length_read"],
        "language": key["language"], "text_sha256": key["text_sha256"], "context": _CONTEXT[key["side"]],
        "sentences": plan["sentences"], "words": plan["rows"], "layers": marker["layers"], "hidden_size": marker["hidden"],
        "words_lost": plan["words_lost"], "words_without_subwords": plan["words_without_subwords"],
        "windowed_sentences": plan["windowed_sentences"], "nonfinite_values": marker["nonfinite"],
        "widened_layers": [l for l in range(marker["layers"]) if _stored_dtype(partial, l) != key["dtype"]],
    }
    _write_json(partial / _INFO, info)
    (partial / _MARKER).unlink()
    (partial / "offsets.npy").unlink()


def _open(entry: Path, sentences: list[list[str]]) -> WordVectors:
    """The cached entry as WordVectors (arrays memory-mapped, words looked up in ``sentences``)."""
    sentence_ids = np.load(entry / "sentence_ids.npy", mmap_mode="r")
    word_positions = np.load(entry / "word_positions.npy", mmap_mode="r")
    info = json.loads((entry / _INFO).read_text())
    words = [sentences[s][p] for s, p in zip(sentence_ids.tolist(), word_positions.tolist())]
    return WordVectors(words, sentence_ids, word_positions, info["layers"], entry, info)


def _stored_dtype(folder: Path, layer: int) -> str:
    """The dtype layer ``layer`` is stored in (float32 when it was widened)."""
    return str(np.load(folder / _layer_file(layer), mmap_mode="r").dtype)


def _layer_file(layer: int) -> str:
    return f"layer_{layer:03d}.npy"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(data, default=str))
