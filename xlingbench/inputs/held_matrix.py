"""The input embedding matrix as tasks 1-3 hold it and the cache stores it: in the model's dtype.

Why: a bfloat16 model's matrix widened to float32 is twice its size; tasks 1-3 held it whole, and
the probe's float32 rows doubled it again (4x the model's own matrix at Gemma-2-2B's shape, 5.5 GB
with the read). Held in the model's dtype, it is converted and normalised in float32 a chunk of
rows at a time where it is used (:mod:`xlingbench.compute.rows`), so the tasks score the same values.

- float32 (and anything that is not :data:`NARROW`): a float32 numpy array, as before;
- bfloat16: stored as its bits (``uint16``: numpy has no bfloat16), held as a torch view of them;
- float16: stored as numpy float16, held as a torch view.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Union

import numpy as np

from xlingbench.inputs.cache import check_floats

if TYPE_CHECKING:
    import torch

#: an embedding matrix as the tasks hold it: float32 rows, or a bfloat16/float16 tensor
Matrix = Union[np.ndarray, "torch.Tensor"]
#: dtypes a model's matrix is held in as it is (2 bytes a value), not widened to float32
NARROW = ("bfloat16", "float16")
#: bfloat16 bits whose exponent is all ones: infinity or NaN
_BFLOAT16_EXPONENT = 0x7F80


def empty_stored(shape: tuple[int, int], dtype: str) -> np.ndarray:
    """An empty matrix in the stored form of ``dtype``; write into it through :func:`held_matrix`."""
    return np.empty(shape, {"bfloat16": np.uint16, "float16": np.float16}.get(dtype, np.float32))


def held_matrix(stored: np.ndarray, dtype: str) -> Matrix:
    """What the tasks read from a stored matrix: a torch view in ``dtype`` (no copy) when it is
    :data:`NARROW`, else the float32 array.

    >>> held_matrix(np.array([[16256, 49152]], dtype=np.uint16), "bfloat16")
    tensor([[ 1., -2.]], dtype=torch.bfloat16)
    """
    if dtype not in NARROW:
        return stored
    import torch

    return torch.from_numpy(stored).view(torch.bfloat16) if dtype == "bfloat16" else torch.from_numpy(stored)


def stored_matrix(matrix: np.ndarray, dtype: str) -> np.ndarray:
    """The float32 ``matrix`` of a model loaded in ``dtype`` in its stored form (exact: a source that
    loads in ``dtype`` gives values of that dtype, widened).

    >>> stored_matrix(np.array([[1.0, -2.0]], dtype=np.float32), "bfloat16").tolist()
    [[16256, 49152]]
    """
    if dtype not in NARROW or matrix.dtype != np.float32:
        return matrix
    import torch

    out = empty_stored(matrix.shape, dtype)
    held_matrix(out, dtype).copy_(torch.from_numpy(matrix))
    return out


def check_stored(arrays: Mapping[str, np.ndarray], dtype: str) -> str | None:
    """The cache's check (:func:`xlingbench.inputs.cache.check_floats`: finite, not all zero) of
    stored matrices, bfloat16 bits read as the floats they are by their exponent and magnitude bits.

    >>> check_stored({"E": np.array([[16256, 0x7FC0]], dtype=np.uint16)}, "bfloat16")
    "array 'E' has 1 non-finite values (NaN or infinity) of 2"
    """
    return check_floats(arrays, _bfloat16_counts if dtype == "bfloat16" else None)


def _bfloat16_counts(bits: np.ndarray) -> tuple[int, bool]:
    """How many bfloat16 values (as bits) are infinity or NaN (exponent all ones), and whether
    any is non-zero (-0.0 is zero too)."""
    return int(np.count_nonzero((bits & _BFLOAT16_EXPONENT) == _BFLOAT16_EXPONENT)), bool((bits & 0x7FFF).any())
