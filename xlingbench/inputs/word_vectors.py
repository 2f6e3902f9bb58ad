"""Per-word hidden states of every layer, streamed to disk and cached: the input of tasks 4-5.

Why this shape: the published pipeline kept activations as JSON and needed 500 GB of RAM. Here
a word's vector at layer l (0 = embedding output .. L) is the hidden state of one of its
subwords (``last`` by default, as published; ``first`` or ``mean`` on request), written as it
is computed into float16 ``.npy`` memmaps sized up front, so memory stays flat however long the
corpus. Special tokens never give a vector: subwords are mapped to words with the fast
tokenizer's ``word_ids()``.

The work is cut into shards of sentences inside ``<entry>.partial``; after each shard the
arrays are flushed and a progress marker is replaced atomically, so an interrupted run resumes
at the last finished shard. The finished directory becomes the cache entry with one
``os.replace``: an entry is complete or absent, never half-written. The cache key holds the
model revision, layer set, aggregation, side, dtype, max_length, language, the corpus
fingerprint and a hash of the sentences given.

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
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np

from xlingbench.inputs.cache import write_atomic
from xlingbench.core.errors import UserError
from xlingbench.core.progress import progress

if TYPE_CHECKING:
    import torch

    from xlingbench.inputs.representations import Representations

KIND = "word_vectors"
AGGREGATIONS = ("last", "first", "mean")
SIDES = ("encoder", "decoder")
DTYPES = ("float16", "float32")
_FORMAT = 1  # bump when the entry layout changes, so old entries are not misread
_MARKER = "progress.json"
_INFO = "info.json"
_CONTEXT = {
    "encoder": "bidirectional: each state has seen the whole sentence",
    "decoder": "teacher-forced decoder with an empty encoder input: the state at position i has seen tokens before i only",
    "causal": "causal decoder-only model: the state at position i has seen tokens up to and including i",
}

Forward = Callable[["torch.Tensor", "torch.Tensor"], Sequence["torch.Tensor"]]


@dataclass
class WordVectors:
    """Row i is word ``words[i]``, word ``word_positions[i]`` of sentence ``sentence_ids[i]``."""

    words: list[str]
    sentence_ids: np.ndarray
    word_positions: np.ndarray
    num_layers: int
    directory: Path
    info: dict[str, Any]

    def layer(self, layer: int) -> np.ndarray:
        """Vectors of layer ``layer`` (0 = embedding output), n_words x d, memory-mapped."""
        if not 0 <= layer < self.num_layers:
            raise IndexError(f"layer {layer} is out of range 0..{self.num_layers - 1}")
        return np.load(self.directory / _layer_file(layer), mmap_mode="r", allow_pickle=False)


@dataclass(frozen=True)
class _Encoded:
    """One sentence as model input, and which tokens make up each kept word."""

    sentence: int
    input_ids: list[int]
    word_tokens: dict[int, list[int]]  # word position -> its token positions (complete words only)


def extract_word_vectors(
    inputs: "Representations",
    sentences: list[list[str]],
    *,
    language: str,
    corpus_fingerprint: str,
    aggregation: str = "last",
    side: str = "encoder",
    batch_size: int = 16,
    max_length: int = 512,
    dtype: str = "float16",
    shard_size: int = 256,
) -> WordVectors:
    """Word vectors of ``sentences`` (lists of words) at every layer, from the cache when there.

    ``shard_size`` sentences are finished between two progress markers (resume granularity).
    """
    _check_options(sentences, aggregation, dtype, language)
    side = _effective_side(inputs.source.arch, side)
    key = inputs.key(
        layers="all", aggregation=aggregation, side=side, dtype=dtype, max_length=max_length,
        language=language, corpus_fingerprint=corpus_fingerprint,
        sentences_sha256=_sentences_hash(sentences), format=_FORMAT,
    )
    entry = inputs.cache.entry_dir(KIND, key)
    if not inputs.cache.is_complete(KIND, key):
        model, tokenizer = inputs.model, inputs.tokenizer  # loading is timed as "load"
        with inputs.timed("extract"):
            forward = _forward_fn(model, tokenizer, side, inputs.source.arch == "encoder-decoder", inputs.device)
            _compute(forward, inputs.device, tokenizer, sentences, key, entry, aggregation, dtype, max_length,
                     batch_size, shard_size)
            inputs.cache.publish(Path(f"{entry}.partial"), KIND, key)
    return _open(entry, sentences)


def _check_options(sentences: list[list[str]], aggregation: str, dtype: str, language: str) -> None:
    if aggregation not in AGGREGATIONS:
        raise UserError(f"Unknown word aggregation {aggregation!r}.", f"Use one of {AGGREGATIONS}.")
    if dtype not in DTYPES:
        raise UserError(f"Unknown storage dtype {dtype!r} for word vectors.", f"Use one of {DTYPES}.")
    if not sentences:
        raise UserError(f"No sentences to extract word vectors from for language {language!r}.", "Check the parallel data for that language.")


def _effective_side(arch: str, side: str) -> str:
    """Which states are taken: "encoder", "decoder" (teacher-forced) or "causal" (decoder-only)."""
    if side not in SIDES:
        raise UserError(f"Unknown side {side!r}.", f"Use one of {SIDES}.")
    if arch == "decoder":
        return "causal"
    if arch == "encoder" and side == "decoder":
        raise UserError("An encoder-only model has no decoder side.", "Use side=encoder for this model.")
    return side


def _sentences_hash(sentences: list[list[str]]) -> str:
    """sha256 of the words given: guards the cache against a fingerprint reused for other text."""
    digest = hashlib.sha256()
    for words in sentences:
        digest.update(("\t".join(words) + "\n").encode("utf-8"))
    return digest.hexdigest()


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


def _encode(tokenizer: Any, index: int, words: list[str], max_length: int) -> tuple[_Encoded, int, int]:
    """Token ids of one sentence and its complete words; plus (truncated, subword-less) counts.

    A word whose subwords were cut by ``max_length`` is dropped rather than represented by a
    part of itself.
    """
    encoding = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)
    tokens = _tokens_by_word(encoding.word_ids())
    full = tokens
    if len(encoding["input_ids"]) >= max_length:
        full = _tokens_by_word(tokenizer(words, is_split_into_words=True).word_ids())
    complete = {w: t for w, t in tokens.items() if len(t) == len(full[w])}
    return _Encoded(index, list(encoding["input_ids"]), complete), len(full) - len(complete), len(words) - len(full)


def _tokens_by_word(word_ids: list[int | None]) -> dict[int, list[int]]:
    """word position -> token positions, special tokens (word id None) left out."""
    out: dict[int, list[int]] = defaultdict(list)
    for position, word in enumerate(word_ids):
        if word is not None:
            out[word].append(position)
    return dict(sorted(out.items()))


# ---------------------------------------------------------------- the streamed computation


def _compute(
    forward: Forward, device: str, tokenizer: Any, sentences: list[list[str]], key: dict[str, Any], entry: Path,
    aggregation: str, dtype: str, max_length: int, batch_size: int, shard_size: int,
) -> None:
    """Fill ``<entry>.partial`` shard by shard (resuming when it is there) and finish it."""
    import torch

    if not getattr(tokenizer, "is_fast", False):
        raise UserError("Word vectors need a fast (Rust) tokenizer for word_ids().", "Load the model's tokenizer with use_fast=True.")
    plan = _plan(tokenizer, sentences, max_length)
    partial = Path(f"{entry}.partial")
    marker = _read_marker(partial, plan)
    if marker is None:
        first = _encode(tokenizer, 0, sentences[0], max_length)[0]
        with torch.inference_mode():
            layers, hidden = _probe(forward, first.input_ids, device)
        marker = _start_partial(partial, plan, layers, hidden, dtype)
    store = [np.load(partial / _layer_file(l), mmap_mode="r+") for l in range(marker["layers"])]
    offsets = np.load(partial / "offsets.npy")
    batches = _batches(tokenizer, sentences, marker["done"], max_length, batch_size, shard_size)
    total = sum(-(-min(shard_size, len(sentences) - s) // batch_size) for s in range(marker["done"], len(sentences), shard_size))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    with torch.inference_mode():
        for shard_end, batch in progress(batches, desc=f"word vectors {key['language']}", total=total, unit="batch"):
            marker["nonfinite"] += _write_batch(forward, device, batch, store, offsets, aggregation, pad)
            if shard_end is not None:
                for array_ in store:
                    array_.flush()
                marker["done"] = shard_end
                _write_json(partial / _MARKER, marker)
    del store
    _finish(partial, key, plan, marker, aggregation)


def _plan(tokenizer: Any, sentences: list[list[str]], max_length: int) -> dict[str, Any]:
    """Count the words that will get a vector (to size the arrays), sentence by sentence."""
    kept, positions = array("q"), array("q")  # compact: 8 bytes a word, not a Python int each
    truncated = subwordless = 0
    for index, words in enumerate(sentences):
        encoded, cut, empty = _encode(tokenizer, index, words, max_length)
        kept.append(len(encoded.word_tokens))
        positions.extend(encoded.word_tokens)
        truncated += cut
        subwordless += empty
    return {
        "sentences": len(sentences), "rows": len(positions), "kept": kept, "positions": positions,
        "truncated_words": truncated, "words_without_subwords": subwordless,
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
    partial.mkdir(parents=True)
    kept = np.frombuffer(plan["kept"], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(kept)]).astype(np.int64)
    np.save(partial / "offsets.npy", offsets)
    np.save(partial / "sentence_ids.npy", np.repeat(np.arange(len(kept), dtype=np.int64), kept))
    np.save(partial / "word_positions.npy", np.frombuffer(plan["positions"], dtype=np.int64))
    for layer in range(layers):
        np.lib.format.open_memmap(partial / _layer_file(layer), mode="w+", dtype=dtype, shape=(plan["rows"], hidden)).flush()
    marker = {"sentences": plan["sentences"], "rows": plan["rows"], "layers": layers, "hidden": hidden, "done": 0, "nonfinite": 0}
    _write_json(partial / _MARKER, marker)
    return marker


def _batches(
    tokenizer: Any, sentences: list[list[str]], start: int, max_length: int, batch_size: int, shard_size: int
) -> Iterator[tuple[int | None, list[_Encoded]]]:
    """Batches of similar length within each shard; the last batch of a shard carries its end."""
    for shard_start in range(start, len(sentences), shard_size):
        shard_end = min(shard_start + shard_size, len(sentences))
        encoded = [_encode(tokenizer, i, sentences[i], max_length)[0] for i in range(shard_start, shard_end)]
        encoded.sort(key=lambda e: len(e.input_ids))
        for b in range(0, len(encoded), batch_size):
            yield (shard_end if b + batch_size >= len(encoded) else None), encoded[b : b + batch_size]


def _write_batch(
    forward: Forward, device: str, batch: list[_Encoded], store: list[np.ndarray], offsets: np.ndarray, aggregation: str, pad: int
) -> int:
    """One forward pass; each kept word's vector at every layer into its row. Returns #non-finite."""
    import torch

    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for b, e in enumerate(batch):
        ids[b, : len(e.input_ids)] = torch.tensor(e.input_ids)
        mask[b, : len(e.input_ids)] = 1
    token_b, token_t, owner, rows = _selection(batch, offsets, aggregation)
    if not rows:
        return 0
    states = forward(ids.to(device), mask.to(device))
    picked = torch.stack([s[token_b, token_t] for s in states]).float()  # (L+1, tokens, d)
    owner_t = torch.tensor(owner, device=picked.device)
    sums = torch.zeros(picked.shape[0], len(rows), picked.shape[2], device=picked.device).index_add_(1, owner_t, picked)
    counts = torch.bincount(owner_t, minlength=len(rows)).to(sums.dtype)
    vectors = (sums / counts[None, :, None]).cpu().numpy().astype(store[0].dtype)
    row_index = np.asarray(rows)
    for layer, array_ in enumerate(store):
        array_[row_index] = vectors[layer]
    return int(np.count_nonzero(~np.isfinite(vectors)))


def _selection(batch: list[_Encoded], offsets: np.ndarray, aggregation: str) -> tuple[list[int], list[int], list[int], list[int]]:
    """Tokens to read (batch index, position), the output word each belongs to, and its row."""
    token_b: list[int] = []
    token_t: list[int] = []
    owner: list[int] = []
    rows: list[int] = []
    for b, e in enumerate(batch):
        for rank, tokens in enumerate(e.word_tokens.values()):
            chosen = {"last": tokens[-1:], "first": tokens[:1], "mean": tokens}[aggregation]
            token_b += [b] * len(chosen)
            token_t += chosen
            owner += [len(rows)] * len(chosen)
            rows.append(int(offsets[e.sentence]) + rank)
    return token_b, token_t, owner, rows


def _finish(partial: Path, key: dict[str, Any], plan: dict[str, Any], marker: dict[str, Any], aggregation: str) -> None:
    """Write the entry's info and drop the resume bookkeeping; the caller then publishes it."""
    info = {
        "side": key["side"], "aggregation": aggregation, "dtype": key["dtype"], "max_length": key["max_length"],
        "language": key["language"], "corpus_fingerprint": key["corpus_fingerprint"], "context": _CONTEXT[key["side"]],
        "sentences": plan["sentences"], "words": plan["rows"], "layers": marker["layers"], "hidden_size": marker["hidden"],
        "truncated_words": plan["truncated_words"], "words_without_subwords": plan["words_without_subwords"],
        "nonfinite_values": marker["nonfinite"],
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


def _layer_file(layer: int) -> str:
    return f"layer_{layer:03d}.npy"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(data, default=str))
