"""Tiny Hugging Face models with planted structure, published the way the Hub caches them.

Why: a unit test must go through the same loading path a real Hub model takes
(``snapshot_download`` -> tokenizer files -> one safetensors tensor), without the network.
``publish`` lays a ``save_pretrained`` folder out as a Hub cache entry (``refs/<branch>`` ->
``snapshots/<commit>``); with ``HF_HUB_OFFLINE=1`` and ``HF_HUB_CACHE`` pointing there (set in
conftest.py), ``owner/name@branch`` resolves exactly as it would online.
"""
from __future__ import annotations

import hashlib
import shutil
import unicodedata
from pathlib import Path

import numpy as np

from xlingbench.compute.surface import WORD_START
from xlingbench.inputs.cache import Cache
from xlingbench.inputs.representations import Representations

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]


def sentencepiece_tokenizer(pieces: list[str]):
    """An XLM-R-style Unigram tokenizer whose vocabulary is SPECIALS + ``pieces`` (ids in order)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = [(p, 0.0) for p in SPECIALS] + [(p, -1.0 - 0.01 * i) for i, p in enumerate(pieces)]
    backend = Tokenizer(models.Unigram(vocab, unk_id=3, byte_fallback=False))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    backend.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", pad_token="<pad>", cls_token="<s>", sep_token="</s>")


def byte_bpe_tokenizer(pieces: list[str]):
    """A GPT-2-style byte-level BPE tokenizer whose vocabulary is ``<|endoftext|>`` + ``pieces``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE({t: i for i, t in enumerate(["<|endoftext|>", *pieces])}, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>")


def encoder_model(embeddings: np.ndarray, extra_rows: int = 3, layers: int = 2, seed: int = 0):
    """A tiny XLM-R masked-LM whose input embedding rows are ``embeddings`` (+ padding rows)."""
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

    torch.manual_seed(seed)
    vocab, dim = embeddings.shape
    config = XLMRobertaConfig(vocab_size=vocab + extra_rows, hidden_size=dim, num_hidden_layers=layers,
                              num_attention_heads=2, intermediate_size=2 * dim, max_position_embeddings=80,
                              pad_token_id=1, bos_token_id=0, eos_token_id=2)
    model = XLMRobertaForMaskedLM(config)
    padding = torch.randn(extra_rows, dim)
    with torch.no_grad():
        model.get_input_embeddings().weight.copy_(torch.cat([torch.as_tensor(embeddings, dtype=torch.float32), padding]))
    return model


def save_model(folder: Path, tokenizer, model, max_shard_size: str | None = None) -> Path:
    """``save_pretrained`` both into ``folder`` (sharded when ``max_shard_size`` is given)."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(folder)
    kwargs = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(folder, **kwargs)
    return folder


def save_model_in(folder: Path, tokenizer, model, dtype: str, max_shard_size: str | None = None) -> Path:
    """:func:`save_model` with the weights cast to ``dtype`` first (a bfloat16 checkpoint, as published now)."""
    import torch

    return save_model(folder, tokenizer, model.to(getattr(torch, dtype)), max_shard_size)


#: (first, last code point, share) of the pieces of a shaped vocabulary: scripts in about a multilingual
#: vocabulary's proportions (Latin takes what is left), so task 1 has its real categories to probe
SCRIPT_BLOCKS = ((0x4E00, 0x9FFF, 0.12), (0x0430, 0x044F, 0.10), (0x0627, 0x064A, 0.06), (0xAC00, 0xD7A3, 0.05),
                 (0x0905, 0x0939, 0.04), (0x03B1, 0x03C9, 0.03), (0x05D0, 0x05EA, 0.03), (0x0E01, 0x0E2E, 0.03),
                 (0x0030, 0x0039, 0.02), (0x0021, 0x002F, 0.02), (0x0061, 0x007A, 1.0))


def scripted_pieces(count: int, seed: int = 0) -> list[str]:
    """``count`` distinct pieces of 1-6 characters in the scripts of :data:`SCRIPT_BLOCKS`, every other
    one a word start (``▁``), in a seeded order that interleaves the scripts as real vocabularies do."""
    rng = np.random.default_rng(seed)
    pieces: dict[str, None] = {}
    for first, last, share in SCRIPT_BLOCKS:
        wanted = len(pieces) + min(round(share * count), count - len(pieces))
        alphabet = np.array([chr(c) for c in range(first, last + 1) if unicodedata.category(chr(c))[0] in "LNP"])
        while len(pieces) < wanted:
            chars = alphabet[rng.integers(0, len(alphabet), size=(wanted - len(pieces), 6))]
            for row, length in zip(chars, rng.integers(1, 7, size=len(chars))):
                pieces.setdefault((WORD_START if len(pieces) % 2 else "") + "".join(row[:length]))
                if len(pieces) == wanted:
                    break
    ordered = list(pieces)
    return [ordered[i] for i in rng.permutation(count)]


def shaped_tokenizer(size: int, byte_level: bool = False):
    """A fast tokenizer with exactly ``size`` entries of :func:`scripted_pieces`: a real model's
    vocabulary size and scripts without its files, for shape-realistic benchmarks.

    SentencePiece-style by default (``<unk>``, then the pieces; text read with ``▁`` before each
    word, each word one piece or ``<unk>``). ``byte_level``: GPT-2-style, as Qwen's (transformers
    loads a Qwen config's tokenizer as byte-level BPE whatever is saved): ``<|endoftext|>``, the 256
    byte symbols, then the pieces in byte-level form; without merges, text is read a byte a token."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    if byte_level:
        symbols = sorted(pre_tokenizers.ByteLevel.alphabet())
        encode = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False).pre_tokenize_str
        encoded = dict.fromkeys(encode(piece.replace(WORD_START, " "))[0][0] for piece in scripted_pieces(size))
        return byte_bpe_tokenizer(symbols + [p for p in encoded if p not in set(symbols)][: size - 1 - len(symbols)])
    vocab = {"<unk>": 0, **{piece: i for i, piece in enumerate(scripted_pieces(size - 1), start=1)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement=WORD_START, prepend_scheme="always")
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>")


def shaped_checkpoint(folder: Path, config, tokenizer_size: int, shard_bytes: int = 1 << 30, seed: int = 0,
                      byte_level: bool = False) -> Path:
    """A random-weight bfloat16 checkpoint of ``config``'s real shapes, written as safetensors
    shards of about ``shard_bytes`` with an index, plus a :func:`shaped_tokenizer` of ``tokenizer_size`` entries.

    Why not ``save_pretrained``: that would build the model in float32 first (9 GB for a
    Gemma-2-shaped 2-layer model); here the network exists only on the meta device and each
    tensor is drawn in bfloat16 and written shard by shard."""
    import json

    import torch
    from safetensors.torch import save_file
    from transformers import AutoModel

    folder.mkdir(parents=True, exist_ok=True)
    with torch.device("meta"):
        shapes = {name: tensor.shape for name, tensor in AutoModel.from_config(config).state_dict().items()}
    generator = torch.Generator().manual_seed(seed)
    shards: list[dict[str, torch.Tensor]] = [{}]
    weight_map, written, total = {}, [], 0
    for name, shape in shapes.items():
        tensor = torch.empty(shape, dtype=torch.bfloat16).uniform_(-0.1, 0.1, generator=generator)
        if shards[-1] and sum(t.nbytes for t in shards[-1].values()) + tensor.nbytes > shard_bytes:
            written.append(_write_shard(folder, shards.pop(), len(written), save_file))
            shards.append({})
        shards[-1][name], total = tensor, total + tensor.nbytes
    written.append(_write_shard(folder, shards.pop(), len(written), save_file))
    for index, (temporary, names) in enumerate(written):
        final = f"model-{index + 1:05d}-of-{len(written):05d}.safetensors"
        temporary.rename(folder / final)
        weight_map.update(dict.fromkeys(names, final))
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))
    config.save_pretrained(folder)
    settings = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**settings, "dtype": "bfloat16", "torch_dtype": "bfloat16"}))
    shaped_tokenizer(tokenizer_size, byte_level).save_pretrained(folder)
    return folder


def _write_shard(folder: Path, tensors: dict, index: int, save_file) -> tuple[Path, list[str]]:
    path = folder / f"shard-{index}.tmp"
    save_file(tensors, str(path))
    return path, list(tensors)


def publish(folder: Path, hub_cache: Path, repo_id: str, branch: str = "main") -> str:
    """Lay ``folder`` out as the Hub cache entry of ``repo_id`` at ``branch``; return its commit."""
    digest = hashlib.sha1()
    for path in sorted(folder.iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    commit = digest.hexdigest()
    repo = hub_cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    if not snapshot.exists():
        shutil.copytree(folder, snapshot)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / branch).write_text(commit)
    return commit


def planted_clusters(groups: dict[str, list[str]], dim: int = 16, spread: float = 0.05, seed: int = 0):
    """Pieces and embeddings where each group's pieces sit near their own random centre."""
    rng = np.random.default_rng(seed)
    pieces, rows = [], []
    for group in groups.values():
        centre = rng.normal(size=dim)
        for piece in group:
            pieces.append(piece)
            rows.append(centre + spread * rng.normal(size=dim))
    return pieces, np.asarray(rows, dtype=np.float32)


class FakeTokenizer:
    """Just what xlingbench.inputs.vocab.build_vocabulary reads from a slow SentencePiece tokenizer."""

    def __init__(self, tokens: list[str], special_ids: list[int]) -> None:
        self.tokens, self.all_special_ids = tokens, special_ids

    def __len__(self) -> int:
        return len(self.tokens)

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
        return [self.tokens[i] for i in ids]


class FakeSource:
    """A ModelSource over given token strings and embedding matrix."""

    def __init__(self, tokens: list[str], matrix: np.ndarray, special_ids: list[int]) -> None:
        self.name = self.model_id = "fake/tiny"
        self.revision, self.arch = "0" * 40, "fake"
        self._tokenizer, self._matrix = FakeTokenizer(tokens, special_ids), matrix

    def load_tokenizer(self) -> FakeTokenizer:
        return self._tokenizer

    def load_embedding_matrix(self) -> np.ndarray:
        return self._matrix


def fake_inputs(tokens: list[str], matrix: np.ndarray, cache_dir: Path, special_ids: list[int] = ()) -> Representations:
    """Representations of a fake model (SentencePiece-style tokens), cached under ``cache_dir``."""
    return Representations(FakeSource(list(tokens), matrix, list(special_ids)), Cache(cache_dir), device="cpu")


LATIN, CYRILLIC = "abcdefghijklmnopqrstuvwxyz", "абвгдежзиклмнопрстуфхцчшщэюя"


def checkpointed_model(root: Path, hub_cache: Path, repo_id: str, steps: tuple[int, ...], seed: int = 3,
                       per_script: int = 40, dim: int = 16) -> dict[int, str]:
    """One Hub repo with a branch ``step<N>`` per training step (step -> commit): ``per_script``
    Latin and as many Cyrillic pieces whose script offset grows with the step, a planted learning curve."""
    rng = np.random.default_rng(seed)
    pieces = ["\u2581" + "".join(rng.choice(list(alphabet), 5)) for alphabet in (LATIN, CYRILLIC) for _ in range(per_script)]
    base = rng.normal(size=(4 + len(pieces), dim))
    commits = {}
    for step in steps:
        matrix = base.copy()
        matrix[4:4 + per_script, 0] += step / 100  # Latin tokens drift apart from Cyrillic ones as training goes on
        folder = save_model(root / f"step{step}", sentencepiece_tokenizer(pieces), encoder_model(matrix.astype(np.float32)))
        commits[step] = publish(folder, hub_cache, repo_id, f"step{step}")
    return commits


def tiny_decoder(vocab: int, dim: int = 16, layers: int = 3, seed: int = 0, heads: int = 2):
    """A tiny random Llama causal LM (one KV head) over ``vocab`` token ids."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab, hidden_size=dim, intermediate_size=2 * dim, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=1, max_position_embeddings=256,
                         bos_token_id=0, eos_token_id=0, pad_token_id=0, tie_word_embeddings=False)
    return LlamaForCausalLM(config).eval()


def reading_decoder(concepts: int, fillers: int, layers: int, read_at: int, scale: float = 30.0):
    """A Llama whose only working block is layer ``read_at``'s attention: every other layer adds
    nothing to the residual stream. Token i < ``concepts`` embeds as the one-hot direction i (the
    planted concept); the other ``fillers`` tokens live in the remaining directions. Layer
    ``read_at`` attends uniformly (zero queries) and copies the concept directions, so the last
    position reads the word's concept there and nowhere else; the head scores token i by
    direction i. Patching the word's state from states 0..read_at moves the answer; later, not.
    """
    import torch

    dim = concepts + fillers
    model = tiny_decoder(concepts + fillers, dim=dim, layers=layers, seed=1, heads=1)
    concept_part = torch.zeros(dim, dim)
    concept_part[:concepts, :concepts] = torch.eye(concepts)
    with torch.no_grad():
        for i, layer in enumerate(model.model.layers):
            layer.mlp.down_proj.weight.zero_()
            attention = layer.self_attn
            attention.q_proj.weight.zero_()
            attention.o_proj.weight.zero_()
            if i == read_at:
                attention.v_proj.weight.copy_(torch.eye(dim))
                attention.o_proj.weight.copy_(concept_part)
        model.model.embed_tokens.weight.copy_(torch.eye(dim))
        model.lm_head.weight.copy_(scale * concept_part)
    return model
