"""Per-word hidden states of every layer, streamed to disk and cached: the input of tasks 4-5.

Why this shape: the published pipeline kept activations as JSON and needed 500 GB of RAM. Here
a word's vector at layer l (0 = embedding output .. L) is the hidden state of one of its
subwords (``last`` by default, as published; ``first`` or ``mean`` on request), written as it
is computed into float16 ``.npy`` memmaps sized up front, so memory stays flat however long the
corpus. Special tokens never give a vector.

Reading: how sentences become model windows and which subword gives each word its vector
(offsets, windows for long sentences, ``max_length`` capped at what the model reads) is
:mod:`xlingbench.inputs.word_reading`; which hidden states are taken for each kind of model is
:mod:`xlingbench.inputs.hidden_states`. ``info`` counts the words left without a subword
(``words_without_subwords``) or in no window whole (``words_lost``) and records the cap
(``max_length_read``) and the subwords the text is read as: ``tokens`` (special tokens aside),
and, when the text read is not the words joined by spaces (raw text with gold words located in
it), ``spaced_tokens``: what the words joined by spaces would have been read as, so the growth
that spacing brings (zh +37% on Gemma 3) is a number in every run that reads raw text.

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
before words are averaged), the layer set stored, aggregation, side, storage dtype, max_length, language and a hash of the
texts and word spans given: nothing about other languages, so a language's vectors are computed
once and shared by every pair it is in. ``batch_size`` and ``shard_size`` change only how the
work is grouped (results agree to float rounding), so they are not in the key.

Layers: only the layers asked for (``layers``, "all" or e.g. "0,6,12") are written, so memory
and disk grow with those layers, not with the model's depth; the key holds the set, and a
request for a subset of what a stored entry holds is answered by that entry
(:func:`stored_superset`) without extracting again.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from array import array
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from xlingbench.compute.concepts import parse_layers
from xlingbench.compute.threads import in_order
from xlingbench.core.errors import UserError
from xlingbench.core.progress import progress
from xlingbench.inputs.cache import Cache, allocate, disk_space, require_space, write_atomic
from xlingbench.inputs.gold_words import Span
from xlingbench.inputs.hidden_states import CONTEXT, Forward, check_last_layer, effective_side, forward_fn, probe
from xlingbench.inputs.segmentation import spaced
from xlingbench.inputs.word_reading import Reader, Window, model_positions

KIND = "word_vectors"
AGGREGATIONS = ("last", "first", "mean")
DTYPES = ("float16", "float32")
FORMAT = 5  # bump when the entry layout, the reading rules or the numbers change, so old entries are not reused (5: one thread a forward pass)
_MARKER = "progress.json"
#: most batches whose forward passes run at once on the CPU, each on ONE torch thread
#: (:func:`xlingbench.compute.threads.in_order`; fewer when torch has fewer threads). One thread a
#: forward pass is what makes the vectors the same on every machine: a matrix product split over
#: more threads sums in another order (e5-small's hidden states differ by ~1e-6 between one and two
#: threads, enough to move float16 vectors and then clusters), and it leaves no intra-op barrier
#: for a descheduled thread to stall. Each holds its batch's states of every layer.
PARALLEL_BATCHES = 4
_INFO = "info.json"


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

    @property
    def stored_layers(self) -> list[int]:
        """The layers this entry holds (all 0..num_layers-1 unless the extraction asked for fewer)."""
        return list(self.info.get("stored_layers", range(self.num_layers)))

    def layer(self, layer: int) -> np.ndarray:
        """Vectors of layer ``layer`` (0 = embedding output), n_words x d (memory-mapped unless selected)."""
        if not 0 <= layer < self.num_layers:
            raise IndexError(f"layer {layer} is out of range 0..{self.num_layers - 1}")
        if layer not in self.stored_layers:
            raise IndexError(f"layer {layer} was not extracted (this entry holds layers {self.stored_layers})")
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


def check_request(
    sentences: list[list[str]], texts: list[str] | None, spans: list[list[Span]] | None, *, arch: str, language: str,
    aggregation: str, side: str, dtype: str, layers: str = "all", last_layer: str = "normed", **sizes: int,
) -> tuple[list[str], list[list[Span]], str]:
    """The texts and word spans to read and the states taken ("encoder", "decoder", "causal"),
    every option checked before anything is loaded (see :func:`key_parts` for what they mean)."""
    _check_options(sentences, aggregation, dtype, language, **sizes)
    layer_set(layers)
    check_last_layer(last_layer)
    texts, spans = _texts_and_spans(sentences, texts, spans)
    return texts, spans, effective_side(arch, side)


def key_parts(texts: list[str], spans: list[list[Span]], *, language: str, aggregation: str, side: str, dtype: str,
              max_length: int, layers: str = "all", last_layer: str = "normed") -> dict[str, Any]:
    """What decides the vectors, besides the model (the caller adds model, revision and dtype).

    ``texts[i]`` is what the model reads for sentence i and ``spans[i][j]`` the [start, end) of
    its word j: they are hashed, so the key changes with the text read. ``layers`` is kept in
    one spelling ("all", or the sorted layers "0,6,12") so equal sets share an entry; ``last_layer``
    is in the key only when it is not the default, so default keys stay what they were."""
    return {"layers": layer_set(layers), "aggregation": aggregation, "side": side, "dtype": dtype, "max_length": max_length,
            "language": language, "text_sha256": _text_hash(texts, spans), "format": FORMAT,
            **({"last_layer": last_layer} if last_layer != "normed" else {})}


def layer_set(layers: str) -> str:
    """``layers`` in the key's spelling: "all", or its distinct layers sorted and comma-joined."""
    if layers.strip().lower() == "all":
        return "all"
    try:
        return ",".join(map(str, parse_layers(layers, 1 << 30)))
    except ValueError:
        raise UserError(f"layers={layers!r} is not 'all' or a comma list of layers 0, 1, ...",
                        "Set layers to 'all' or to layers such as 0,6,12 (0 = embedding output).") from None


def _layers_in(spelling: str, depth: int) -> list[int]:
    """The layers a key's ``layers`` names in a model with ``depth`` layers (0..depth-1)."""
    try:
        return parse_layers(spelling, depth)
    except ValueError as err:
        raise UserError(f"{err}.", "Set --set TASK.layers=all or layers the model has.") from None


def stored_superset(cache: Cache, key: dict[str, Any]) -> Path | None:
    """A complete entry that differs from ``key`` in its layers alone and holds every layer ``key``
    asks for ("all" is the model's depth, read from the entry), or None."""
    def rest(parts: dict[str, Any]) -> str:
        return json.dumps({k: v for k, v in parts.items() if k != "layers"}, sort_keys=True, default=str)

    wanted = rest(key)
    for entry, parts in cache.entries(KIND):
        if rest(parts) != wanted:
            continue
        try:
            info = json.loads((entry / _INFO).read_text())
        except (OSError, ValueError):
            continue
        depth = int(info["layers"])
        try:
            needed = set(_layers_in(key["layers"], depth))
        except UserError:
            continue
        if needed <= set(info.get("stored_layers", range(depth))):
            return entry
    return None


def extract_into(
    partial: Path, model: Any, tokenizer: Any, device: str, key: dict[str, Any], texts: list[str], spans: list[list[Span]],
    *, encoder_decoder: bool, batch_size: int, shard_size: int,
) -> None:
    """Compute the vectors ``key`` names (:func:`key_parts`) into the folder ``partial``, resuming
    what an interrupted run left there; ``shard_size`` sentences are finished between two
    progress markers. The caller holds the entry's lock and publishes the folder."""
    side = key["side"]
    forward = forward_fn(model, tokenizer, side, encoder_decoder, device, key.get("last_layer", "normed"))
    reader = Reader(tokenizer, min(key["max_length"], model_positions(model)), causal=side != "encoder")
    _compute(forward, device, reader, texts, spans, key, partial, key["aggregation"], key["dtype"], batch_size, shard_size)

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




def _compute(
    forward: Forward, device: str, reader: Reader, texts: list[str], spans: list[list[Span]], key: dict[str, Any],
    partial: Path, aggregation: str, dtype: str, batch_size: int, shard_size: int,
) -> None:
    """Fill ``partial`` shard by shard (resuming when it is there) and finish it."""
    import torch

    plan = _plan(reader, texts, spans, key["language"])
    marker = _read_marker(partial, plan)
    if marker is None:
        index = plan["probe"]
        first = reader.encode(index, texts[index], spans[index]).windows[0]
        with torch.inference_mode():
            layers, hidden = probe(forward, first.input_ids, device)
        marker = _start_partial(partial, plan, layers, _layers_in(key["layers"], layers), hidden, dtype)
    store = {l: np.load(partial / _layer_file(l), mmap_mode="r+") for l in marker["stored"]}
    offsets = np.load(partial / "offsets.npy")
    batches = _batches(reader, texts, spans, marker["done"], batch_size, shard_size)
    windows = np.frombuffer(plan["windows"], dtype=np.int64)
    total = sum(-(-int(windows[s : s + shard_size].sum()) // batch_size) for s in range(marker["done"], len(texts), shard_size))
    pad = reader.tokenizer.pad_token_id if reader.tokenizer.pad_token_id is not None else 0
    layers_read = list(store)

    def read(item: tuple[int | None, list[Window]]) -> tuple[np.ndarray, np.ndarray]:
        return _read_batch(forward, device, item[1], layers=layers_read, offsets=offsets, aggregation=aggregation, pad=pad)

    workers = min(PARALLEL_BATCHES, torch.get_num_threads()) if torch.device(device).type == "cpu" else 1
    with closing(in_order(batches, read, workers, threads_each=1)) as done:
        for (shard_end, _), (rows, vectors) in progress(done, desc=f"word vectors {key['language']}", total=total, unit="batch"):
            marker["nonfinite"] += _write_batch(store, rows, vectors, widen=lambda layer: _widen(partial, store, layer))
            if shard_end is not None:
                for array_ in store.values():
                    array_.flush()
                marker["done"] = shard_end
                _write_json(partial / _MARKER, marker)
    store.clear()  # release the memory maps before the folder is finished
    _finish(partial, key, plan, marker, aggregation)


def _plan(reader: Reader, texts: list[str], spans: list[list[Span]], language: str) -> dict[str, Any]:
    """Count the words that will get a vector (to size the arrays) and the windows, sentence by sentence."""
    kept, positions, windows = array("q"), array("q"), array("q")  # compact: 8 bytes an entry, not a Python int
    lost = subwordless = windowed = tokens = spaced_tokens = 0
    raw = False
    probe = None
    for index, (text, line_spans) in enumerate(zip(texts, spans)):
        encoded = reader.encode(index, text, line_spans)
        tokens += encoded.tokens
        as_spaced = spaced([text[a:b] for a, b in line_spans])[0]
        raw = raw or as_spaced != text
        spaced_tokens += encoded.tokens if as_spaced == text else reader.count(as_spaced)
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
        "tokens": tokens, "words_given": sum(len(line_spans) for line_spans in spans), **({"spaced_tokens": spaced_tokens} if raw else {}),
    }


def _read_marker(partial: Path, plan: dict[str, Any]) -> dict[str, Any] | None:
    """The progress of an interrupted run of the same plan, or None (then start afresh)."""
    try:
        marker = json.loads((partial / _MARKER).read_text())
    except (OSError, ValueError):
        return None
    if marker.get("sentences") != plan["sentences"] or marker.get("rows") != plan["rows"] or "stored" not in marker:
        return None
    return marker


def _start_partial(partial: Path, plan: dict[str, Any], layers: int, stored: list[int], hidden: int, dtype: str) -> dict[str, Any]:
    """Create the arrays of the ``stored`` layers (of ``layers``) at full size, with row bookkeeping,
    and a marker saying nothing is done."""
    shutil.rmtree(partial, ignore_errors=True)
    with disk_space(partial.parent, remove=partial):
        partial.mkdir(parents=True)
        kept = np.frombuffer(plan["kept"], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(kept)]).astype(np.int64)
        require_space(partial, (len(offsets) + 2 * plan["rows"]) * 8 + len(stored) * plan["rows"] * hidden * np.dtype(dtype).itemsize)
        np.save(partial / "offsets.npy", offsets)
        np.save(partial / "sentence_ids.npy", np.repeat(np.arange(len(kept), dtype=np.int64), kept))
        np.save(partial / "word_positions.npy", np.frombuffer(plan["positions"], dtype=np.int64))
        for layer in stored:
            np.lib.format.open_memmap(partial / _layer_file(layer), mode="w+", dtype=dtype, shape=(plan["rows"], hidden)).flush()
            allocate(partial / _layer_file(layer))
    marker = {"sentences": plan["sentences"], "rows": plan["rows"], "layers": layers, "stored": stored, "hidden": hidden,
              "done": 0, "nonfinite": 0}
    _write_json(partial / _MARKER, marker)
    return marker


def _batches(
    reader: Reader, texts: list[str], spans: list[list[Span]], start: int, batch_size: int, shard_size: int
) -> Iterator[tuple[int | None, list[Window]]]:
    """Batches of windows of similar length within each shard; the last batch of a shard carries its end."""
    for shard_start in range(start, len(texts), shard_size):
        shard_end = min(shard_start + shard_size, len(texts))
        windows = [w for i in range(shard_start, shard_end) for w in reader.encode(i, texts[i], spans[i]).windows]
        windows.sort(key=lambda w: len(w.input_ids))
        if not windows:
            yield shard_end, []
        for b in range(0, len(windows), batch_size):
            yield (shard_end if b + batch_size >= len(windows) else None), windows[b : b + batch_size]


def _read_batch(
    forward: Forward, device: str, batch: list[Window], *, layers: list[int], offsets: np.ndarray, aggregation: str, pad: int,
) -> tuple[np.ndarray, np.ndarray]:
    """One forward pass (in any thread): the rows of the batch's words and their vectors at ``layers``
    (float32, ``(layers, words, d)``)."""
    import torch

    if not batch:
        return np.zeros(0, dtype=np.int64), np.zeros((len(layers), 0, 0), dtype=np.float32)
    width = max(len(w.input_ids) for w in batch)
    ids = torch.full((len(batch), width), pad, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for b, window in enumerate(batch):
        ids[b, : len(window.input_ids)] = torch.tensor(window.input_ids)
        mask[b, : len(window.input_ids)] = 1
    token_b, token_t, owner, rows = _selection(batch, offsets, aggregation)
    with torch.inference_mode():  # per thread: a worker thread does not inherit the caller's mode
        states = forward(ids.to(device), mask.to(device))
        at = (torch.tensor(token_b, device=states[0].device), torch.tensor(token_t, device=states[0].device))
        picked = torch.stack([states[layer][at] for layer in layers]).float()  # (layers, tokens, d)
        owner_t = torch.tensor(owner, device=picked.device)
        sums = torch.zeros(picked.shape[0], len(rows), picked.shape[2], device=picked.device).index_add_(1, owner_t, picked)
        counts = torch.bincount(owner_t, minlength=len(rows)).to(sums.dtype)
        return np.asarray(rows, dtype=np.int64), (sums / counts[None, :, None]).cpu().numpy()


def _write_batch(store: dict[int, np.ndarray], rows: np.ndarray, vectors: np.ndarray,
                 widen: Callable[[int], None] = lambda layer: None) -> int:
    """A batch's word vectors (:func:`_read_batch`) into their rows at every stored layer (``store``:
    layer -> rows, in the order read), in this thread; a layer whose values do not fit its storage
    dtype is first ``widen``-ed. Returns #non-finite values written."""
    nonfinite = 0
    if not len(rows):
        return nonfinite
    for index, layer in enumerate(store):
        if not fits(vectors[index], store[layer].dtype):
            widen(layer)
        stored = vectors[index].astype(store[layer].dtype)
        store[layer][rows] = stored
        nonfinite += int(np.count_nonzero(~np.isfinite(stored)))
    return nonfinite


def fits(values: np.ndarray, dtype: np.dtype) -> bool:
    """Whether the finite ``values`` stay finite in ``dtype`` (float16 ends at 65,504)."""
    finite = values[np.isfinite(values)]
    return finite.size == 0 or float(np.abs(finite).max()) <= float(np.finfo(dtype).max)


def _widen(partial: Path, store: dict[int, np.ndarray], layer: int) -> None:
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


def _selection(batch: list[Window], offsets: np.ndarray, aggregation: str) -> tuple[list[int], list[int], list[int], list[int]]:
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
        "language": key["language"], "text_sha256": key["text_sha256"], "context": CONTEXT[key["side"]],
        "last_layer": key.get("last_layer", "normed"),
        "sentences": plan["sentences"], "words": plan["rows"], "layers": marker["layers"], "stored_layers": marker["stored"],
        "hidden_size": marker["hidden"],
        "words_lost": plan["words_lost"], "words_without_subwords": plan["words_without_subwords"],
        "windowed_sentences": plan["windowed_sentences"], "nonfinite_values": marker["nonfinite"],
        **{name: plan[name] for name in ("tokens", "words_given", "spaced_tokens") if name in plan},
        "widened_layers": [l for l in marker["stored"] if _stored_dtype(partial, l) != key["dtype"]],
    }
    _write_json(partial / _INFO, info)
    (partial / _MARKER).unlink()
    (partial / "offsets.npy").unlink()


def token_metrics(language: str, info: dict[str, Any]) -> dict[str, float]:
    """The metrics of how ``language``'s text was read (entry ``info``): ``tokens_per_word/<lang>``
    (subwords of the text read, special tokens aside, per word given) and, when raw text was
    read, ``spaced_token_growth/<lang>`` (how many more subwords the words joined by spaces
    would have taken: 0.37 is +37%). Nothing for an entry written before they were counted."""
    if not info.get("tokens") or not info.get("words_given"):
        return {}
    metrics = {f"tokens_per_word/{language}": info["tokens"] / info["words_given"]}
    if "spaced_tokens" in info:
        metrics[f"spaced_token_growth/{language}"] = info["spaced_tokens"] / info["tokens"] - 1
    return metrics


def open_entry(entry: Path, sentences: list[list[str]]) -> WordVectors:
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
