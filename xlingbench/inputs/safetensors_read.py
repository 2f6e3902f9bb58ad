"""Reading one tensor of a safetensors checkpoint without mapping or copying the whole file.

Why: tasks 1-3 need only the input embedding, and a checkpoint may be 50 GB; the header says
where the tensor lies, and its rows are read in blocks into the one result array. Nothing is
ever unpickled: a folder holding only pickled weights is refused with the fix.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

from xlingbench.core.errors import UserError
from xlingbench.inputs.held_matrix import empty_stored, held_matrix

#: pickled checkpoints, never loaded (unpickling runs code)
PICKLED_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "*.pt", "*.ckpt")
#: safetensors dtype codes of float tensors -> torch dtype names
SAFETENSORS_FLOATS = {"F32": "float32", "BF16": "bfloat16", "F16": "float16", "F64": "float64"}
#: bytes of the checkpoint read per block when widening the embedding (the read's overhead over its result)
READ_BLOCK_BYTES = 32 << 20


def read_rows(path: str, name: str, dtype: str, *, widen: bool = True) -> np.ndarray:
    """Tensor ``name`` of the safetensors file ``path``, rounded to ``dtype`` and widened to float32;
    with ``widen=False``, in the stored form of ``dtype`` (:mod:`xlingbench.inputs.held_matrix`: a
    bfloat16 matrix as its bits, half the float32 result).

    Why not ``safe_open(...).get_tensor(name).float()``: that holds the stored tensor, its
    float32 copy and the memory-mapped file pages at once (1.5x the float32 result for a
    bfloat16 tensor, more with the pages). Here blocks of :data:`READ_BLOCK_BYTES` are read with
    plain file reads (no mapping) into one reused buffer and converted into the result, so the
    read peaks at the result plus about two blocks.
    """
    import torch

    header = tensor_header(path, name)
    stored = SAFETENSORS_FLOATS.get(header["dtype"])
    if stored is None or len(header["shape"]) != 2:
        raise UserError(f"{path}: tensor {name} is {header['dtype']} {header['shape']}, not a 2-D float matrix.",
                        "Use a checkpoint whose input embedding is stored as a float matrix (not quantised).")
    rows, cols = header["shape"]
    source_dtype, rounded = getattr(torch, stored), getattr(torch, dtype)
    row_bytes = cols * source_dtype.itemsize
    block_rows = max(1, READ_BLOCK_BYTES // row_bytes)
    result = empty_stored((rows, cols), "float32" if widen else dtype)
    target, buffer = torch.as_tensor(held_matrix(result, "float32" if widen else dtype)), bytearray(block_rows * row_bytes)
    with open(path, "rb") as handle:
        handle.seek(header["start"])
        for start in range(0, rows, block_rows):
            count = min(block_rows, rows - start)
            view = memoryview(buffer)[: count * row_bytes]
            if handle.readinto(view) != len(view):
                raise UserError(f"{path} ends inside tensor {name}.", "The checkpoint file is truncated: download it again.")
            block = torch.frombuffer(buffer, dtype=source_dtype, count=count * cols).view(count, cols)
            target[start : start + count].copy_(block.to(rounded))
    return result


def tensor_header(path: str, name: str) -> dict[str, Any]:
    """``dtype``, ``shape`` and the absolute byte offset ``start`` of tensor ``name`` in a safetensors file."""
    try:
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            entry = json.loads(handle.read(length))[name]
        return {"dtype": entry["dtype"], "shape": entry["shape"], "start": 8 + length + entry["data_offsets"][0]}
    except (struct.error, ValueError, KeyError, TypeError, IndexError, OverflowError, MemoryError) as err:  # a random header length
        raise _damaged(path, f"{type(err).__name__}: {err}") from None


def safetensors_keys(path: str) -> list[str]:
    """The tensor names of a safetensors file, which safetensors checks against the file's length."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, framework="pt") as handle:
            return list(handle.keys())
    except SafetensorError as err:
        raise _damaged(path, str(err)) from None


def _damaged(path: str, why: str) -> UserError:
    return UserError(f"{path} is not a readable safetensors file ({why}).",
                     "The file is damaged or truncated: download or save the checkpoint again.")


def no_safetensors(folder: Path) -> UserError:
    """Why a folder without safetensors weights is refused: no weights at all, or pickled ones only."""
    pickled = sorted(p.name for pattern in PICKLED_WEIGHTS for p in folder.glob(pattern))
    if pickled:
        return UserError(f"{folder} holds its weights only as {pickled[0]}, a pickle, which xlingbench never loads "
                         "(unpickling can run any code).",
                         "Convert it to safetensors where you trust it: model.save_pretrained(folder) writes model.safetensors.")
    if (folder / "model.safetensors").exists():  # /dev/urandom, a fifo, a folder: never read (it might not end)
        return UserError(f"{folder / 'model.safetensors'} is not a regular file (it is, or links to, a device or a folder).",
                         "Put the checkpoint's own model.safetensors file there.")
    return UserError(f"{folder} has no weights: no model.safetensors or model.safetensors.index.json.",
                     "Save the model with save_pretrained, or copy its safetensors files into the folder.")
