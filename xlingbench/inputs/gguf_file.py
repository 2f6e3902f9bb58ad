"""The header of a GGUF file (llama.cpp's checkpoint format) and one tensor read from it.

Why a reader of our own: ``gguf.GGUFReader`` builds a numpy view for every element of every
metadata array, and a 262,144-token vocabulary is three such arrays: opening Gemma 3 270M that
way takes about two minutes. Tasks 1-3 need only the tensor directory (where ``token_embd.weight``
is and how it is quantised), so this module walks the header with ``struct`` (array elements are
skipped, not kept) and dequantises the one tensor in row blocks with ``gguf.dequantize``.

Layout (GGUF v2/v3, little-endian): ``b"GGUF"``, u32 version, u64 tensor count, u64 key-value
count; each key-value pair is a string key, a u32 value type and the value (an array is a u32
element type, a u64 count and the elements); each tensor is a string name, u32 dimension count,
u64 dimensions (fastest-varying first), u32 GGML type and u64 offset into the data section, which
starts at the next multiple of ``general.alignment`` (32 by default). A string is a u64 length and
UTF-8 bytes.
"""
from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xlingbench.core.errors import UserError

MAGIC = b"GGUF"
#: GGUF metadata value types with a fixed size: type code -> struct format
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
#: bytes dequantised per block when reading a tensor (bounds the temporaries of gguf.dequantize)
READ_BLOCK_BYTES = 16 << 20
INSTALL_FIX = "pip install 'xlingbench[offline-decoder]' (it brings the gguf package)"


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of the directory: GGML type code, shape in torch order (rows first), data offset."""

    name: str
    ggml_type: int
    shape: tuple[int, ...]
    offset: int


@dataclass(frozen=True)
class GgufHeader:
    """What a GGUF file says about itself: scalar metadata (arrays left out), tensors, data start."""

    path: Path
    metadata: dict[str, Any]
    tensors: dict[str, TensorInfo]
    data_start: int


class _Cursor:
    """Sequential little-endian reads from a file, in chunks (headers are megabytes of strings)."""

    def __init__(self, handle: Any) -> None:
        self.handle, self.buffer, self.at = handle, b"", 0

    def take(self, n: int) -> bytes:
        while len(self.buffer) - self.at < n:
            chunk = self.handle.read(max(1 << 20, n))
            if not chunk:
                raise EOFError("the file ends inside its header")
            self.buffer, self.at = self.buffer[self.at :] + chunk, 0
        out = self.buffer[self.at : self.at + n]
        self.at += n
        return out

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        return self.take(self.unpack("<Q")).decode("utf-8", errors="replace")

    def position(self) -> int:
        return self.handle.tell() - (len(self.buffer) - self.at)


def read_header(path: Path) -> GgufHeader:
    """The header of the GGUF file ``path``; a UserError naming it when it is not one."""
    try:
        with open(path, "rb") as handle:
            cursor = _Cursor(handle)
            if cursor.take(4) != MAGIC:
                raise ValueError("it does not start with b'GGUF'")
            version = cursor.unpack("<I")
            if version < 2:
                raise ValueError(f"GGUF version {version} is older than 2")
            n_tensors, n_values = cursor.unpack("<Q"), cursor.unpack("<Q")
            metadata = {}
            for _ in range(n_values):
                key = cursor.string()
                value = _value(cursor, cursor.unpack("<I"))
                if value is not None:
                    metadata[key] = value
            tensors = {}
            for _ in range(n_tensors):
                name = cursor.string()
                dims = [cursor.unpack("<Q") for _ in range(cursor.unpack("<I"))]
                tensors[name] = TensorInfo(name, cursor.unpack("<I"), tuple(reversed(dims)), cursor.unpack("<Q"))
            alignment = int(metadata.get("general.alignment", 32))
            start = -(-cursor.position() // alignment) * alignment
    except (OSError, ValueError, EOFError, struct.error, KeyError, MemoryError) as err:
        raise UserError(f"{path} is not a readable GGUF file ({type(err).__name__}: {err}).",
                        "Give a GGUF checkpoint (llama.cpp's .gguf), downloaded whole.") from None
    return GgufHeader(Path(path), metadata, tensors, start)


def _value(cursor: _Cursor, kind: int) -> Any:
    """One metadata value; arrays are skipped (None): the tasks need none of them."""
    if kind in _SCALARS:
        return cursor.unpack(_SCALARS[kind])
    if kind == _STRING:
        return cursor.string()
    if kind == _ARRAY:
        element, count = cursor.unpack("<I"), cursor.unpack("<Q")
        if element in _SCALARS:
            cursor.take(struct.calcsize(_SCALARS[element]) * count)
        else:
            for _ in range(count):
                _value(cursor, element)
        return None
    raise ValueError(f"unknown metadata value type {kind}")


def type_name(ggml_type: int) -> str:
    """The GGML type's name (``Q4_K``, ``F32``...)."""
    from gguf import GGMLQuantizationType

    try:
        return GGMLQuantizationType(ggml_type).name
    except ValueError:
        return f"type{ggml_type}"


def quantisation(header: GgufHeader, embedding: str = "token_embd.weight") -> dict[str, str]:
    """How the file is quantised: its declared file type, the input embedding's type and the
    types of the blocks' matrices (norms and other vectors are float32 in every GGUF)."""
    from gguf import LlamaFileType

    declared = header.metadata.get("general.file_type")
    try:
        file_type = LlamaFileType(declared).name.removeprefix("MOSTLY_") if declared is not None else "unknown"
    except ValueError:
        file_type = f"file_type{declared}"
    blocks = sorted({type_name(t.ggml_type) for t in header.tensors.values() if t.name.startswith("blk.") and len(t.shape) == 2})
    found = header.tensors.get(embedding)
    return {"file_type": file_type, "embedding": type_name(found.ggml_type) if found else "absent", "blocks": ",".join(blocks)}


def read_matrix(header: GgufHeader, name: str) -> np.ndarray:
    """Tensor ``name`` dequantised to a float32 (rows, columns) array, read in row blocks."""
    try:
        from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, dequantize
    except ImportError as err:
        raise UserError("Reading a GGUF checkpoint needs the gguf package, which is not installed.", INSTALL_FIX) from err
    info = header.tensors.get(name)
    if info is None or len(info.shape) != 2:
        raise UserError(f"{header.path} has no 2-D tensor {name!r}.", "Use a GGUF checkpoint of a language model (it stores token_embd.weight).")
    qtype = GGMLQuantizationType(info.ggml_type)
    block_values, block_bytes = GGML_QUANT_SIZES[qtype]
    rows, cols = info.shape
    row_bytes = cols // block_values * block_bytes
    stored = np.memmap(header.path, dtype=np.uint8, mode="r", offset=header.data_start + info.offset, shape=(rows, row_bytes))
    result = np.empty((rows, cols), dtype=np.float32)
    step = max(1, READ_BLOCK_BYTES // max(row_bytes, 1))
    for start in range(0, rows, step):
        block = np.ascontiguousarray(stored[start : start + step])
        result[start : start + len(block)] = dequantize(block, qtype).reshape(len(block), cols)
    return result


def file_sha256(path: Path) -> str:
    """The sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
