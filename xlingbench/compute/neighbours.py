"""Exact cosine nearest neighbours over a whole vocabulary, in bounded memory.

Why exact: task 2 counts categories among the 50 nearest tokens and task 3 ranks translations;
an approximate index changes both numbers in ways nobody can trace. Why chunked: the full
similarity matrix of a 250k vocabulary is 250 GB. Queries are taken ``chunk_size`` at a time,
so the peak extra memory is ``chunk_size x V`` float32 similarities (1024 x 250k = 1 GB),
whatever the number of queries.

Inputs are L2-normalised rows (``Vocabulary.unit_embeddings``), so cosine similarity is a dot
product, computed in float32 with torch on ``device``.

Exclusions: a query can exclude itself (``exclude_self``) and any ids of its own (``exclude``,
one id array per query: task 3 skips the query's surface variants). Excluded rows are never
returned and never counted in a rank.

Ties are broken deterministically: among equal similarities the lower token id comes first.
``torch.topk`` alone does not promise that, so each row's k results are re-sorted by
(similarity descending, id ascending), and a row whose k-th similarity is shared by a row left
outside the k is recomputed with a full stable sort.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from xlingbench.core.progress import progress

if TYPE_CHECKING:
    import torch

DEFAULT_CHUNK = 1024


def top_k_neighbours(
    unit: np.ndarray,
    query_ids: np.ndarray,
    k: int,
    *,
    exclude_self: bool = True,
    exclude: Sequence[np.ndarray] | None = None,
    device: str = "cpu",
    chunk_size: int = DEFAULT_CHUNK,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most similar rows of ``unit`` for each query id: (ids, similarities), each Q x k.

    Rows are ordered by similarity descending, then id ascending. Raises ValueError when a query
    has fewer than ``k`` rows left after its exclusions.
    """
    query_ids = _check(unit, query_ids, exclude)
    ids_out = np.empty((len(query_ids), k), dtype=np.int64)
    sims_out = np.empty((len(query_ids), k), dtype=np.float32)
    matrix = _on_device(unit, device)
    for start, sims in _similarity_chunks(matrix, query_ids, exclude_self, exclude, chunk_size):
        ids, vals = _top_k_ordered(sims, k)
        ids_out[start : start + len(ids)] = ids.cpu().numpy()
        sims_out[start : start + len(ids)] = vals.cpu().numpy()
    return ids_out, sims_out


def target_ranks(
    unit: np.ndarray,
    query_ids: np.ndarray,
    targets: Sequence[np.ndarray],
    *,
    exclude_self: bool = True,
    exclude: Sequence[np.ndarray] | None = None,
    device: str = "cpu",
    chunk_size: int = DEFAULT_CHUNK,
) -> list[np.ndarray]:
    """For each query, the exact rank of each of its target ids (0 = nearest).

    A target's rank is the number of non-excluded rows with a strictly larger similarity to
    the query, so a target tied with others gets the best rank of the tie. A target that is
    itself excluded is ranked by its similarity all the same.
    """
    query_ids = _check(unit, query_ids, exclude)
    if len(targets) != len(query_ids):
        raise ValueError(f"targets has {len(targets)} entries for {len(query_ids)} queries")
    import torch

    matrix = _on_device(unit, device)
    ranks: list[np.ndarray] = []
    for start, sims in _similarity_chunks(matrix, query_ids, exclude_self, exclude, chunk_size):
        for row in range(sims.shape[0]):
            wanted = torch.as_tensor(np.asarray(targets[start + row], dtype=np.int64), device=sims.device)
            scores = sims[row, wanted]
            ranks.append((sims[row][None, :] > scores[:, None]).sum(dim=1).cpu().numpy())
    return ranks


def _check(unit: np.ndarray, query_ids: np.ndarray, exclude: Sequence[np.ndarray] | None) -> np.ndarray:
    """Validated query ids as int64; ValueError naming the bad argument otherwise."""
    query_ids = np.asarray(query_ids, dtype=np.int64)
    if unit.ndim != 2:
        raise ValueError(f"unit must be a 2-D matrix, got shape {unit.shape}")
    if query_ids.ndim != 1 or (len(query_ids) and (query_ids.min() < 0 or query_ids.max() >= len(unit))):
        raise ValueError(f"query_ids must be a 1-D array of row ids in [0, {len(unit)})")
    if exclude is not None and len(exclude) != len(query_ids):
        raise ValueError(f"exclude has {len(exclude)} entries for {len(query_ids)} queries")
    if not np.isfinite(unit).all():
        raise ValueError("unit holds NaN or infinite values; similarities would be meaningless")
    return query_ids


def _on_device(unit: np.ndarray, device: str) -> "torch.Tensor":
    import torch

    return torch.from_numpy(np.ascontiguousarray(unit, dtype=np.float32)).to(device)


def _similarity_chunks(matrix, query_ids, exclude_self, exclude, chunk_size):
    """Yield (start, chunk x V similarities) with excluded rows set to -inf."""
    import torch

    starts = range(0, len(query_ids), chunk_size)
    for start in progress(starts, desc="neighbours", total=len(starts), unit="chunk"):
        rows = query_ids[start : start + chunk_size]
        sims = matrix[torch.as_tensor(rows, device=matrix.device)] @ matrix.T
        if exclude_self:
            sims[torch.arange(len(rows), device=matrix.device), torch.as_tensor(rows, device=matrix.device)] = -np.inf
        if exclude is not None:
            extra = [np.asarray(e, dtype=np.int64) for e in exclude[start : start + chunk_size]]
            at_row = np.repeat(np.arange(len(extra)), [len(e) for e in extra])
            at_col = np.concatenate(extra) if extra else np.empty(0, dtype=np.int64)
            sims[torch.as_tensor(at_row, device=matrix.device), torch.as_tensor(at_col, device=matrix.device)] = -np.inf
        yield start, sims


def _top_k_ordered(sims: "torch.Tensor", k: int) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Top ``k`` per row, ordered by (similarity desc, id asc), exact under ties."""
    import torch

    if k > sims.shape[1]:
        raise ValueError(f"k={k} exceeds the {sims.shape[1]} rows of the vocabulary")
    vals, ids = torch.topk(sims, k, dim=1)
    if torch.isneginf(vals[:, -1]).any():
        raise ValueError(f"a query has fewer than k={k} rows left after its exclusions")
    straddling = ((sims >= vals[:, -1:]).sum(dim=1) > k).nonzero().flatten().tolist()
    for row in straddling:  # the k-th value is shared with a row outside the top k
        order = torch.sort(sims[row], descending=True, stable=True).indices[:k]
        ids[row], vals[row] = order, sims[row, order]
    ids, perm = torch.sort(ids, dim=1)
    vals, perm2 = torch.sort(vals.gather(1, perm), dim=1, descending=True, stable=True)
    return ids.gather(1, perm2), vals
