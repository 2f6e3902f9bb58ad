"""Exact cosine nearest neighbours over a whole vocabulary, in bounded memory.

Why exact: task 2 counts categories among the 50 nearest tokens and task 3 ranks translations;
an approximate index changes both numbers in ways nobody can trace. Why chunked: the full
similarity matrix of a 250k vocabulary is 250 GB. Queries are taken ``chunk_size`` at a time
into one reused ``chunk_size x V`` buffer (at most ``BUFFER_BYTES``: 256 x 250k float32), whatever the number
of queries; reusing it spares the page faults of a fresh allocation per chunk.

Inputs are L2-normalised rows (``Vocabulary.unit_embeddings``), so cosine similarity is a dot
product, computed with torch on ``device``; or, with ``normalise=True``, the raw matrix in any
dtype (a bfloat16 tensor too), whose rows are normalised a block of ``rows.CHUNK`` rows at a time
as they are needed (:func:`xlingbench.compute.rows.unit_rows`: bit-identical to the unit matrix's
rows), so no unit copy of the whole vocabulary is ever made: at an 8B model's shape that copy was
2 GB beside the 2 GB float32 matrix. The cost is one more pass over the matrix per chunk of queries.

Top-k is screen, then prove. A screening matmul (float32, or float16/bfloat16 where
``precision`` asks: the default on CUDA) picks the ``k + margin`` best candidates of each row;
their scores are then recomputed in float64 (``exact`` below: float64 dot products of the
float32 rows, within ~1e-14 of the true cosine, so the same whatever the screening precision)
and ordered by (exact score descending, id ascending). The result is proven exact per row: every
row left out has a screening score at most the candidates' lowest, hence an exact score at
most that plus ``screening_error``; when that bound is strictly below the k-th exact score, no
left-out row can enter or tie the top k. A row that fails the proof (a near-tie straddling
the candidates' edge, or a coarse screen) is widened to every row whose bound reaches its k-th
exact score and recomputed exactly, so results never depend on the screen. The candidates
are picked without a full ``torch.topk`` over V: the row's maxima of groups of ``GROUP``
columns are ranked first, and the top ``n`` values of a row lie in its ``n`` best groups.

Exclusions: a query can exclude itself (``exclude_self``) and any ids of its own (``exclude``,
one id array per query: task 3 skips the query's surface variants). Excluded rows are never
returned and never counted in a rank.

Ranks (``best_target_ranks``) count float32 similarities of the whole row, for all queries of a
chunk at once, one comparison pass per group of targets.
"""
from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from xlingbench.compute.rows import CHUNK, float32_rows, row_norms, unit_rows
from xlingbench.core.progress import progress

if TYPE_CHECKING:
    import torch

DEFAULT_CHUNK = 512  # queries at once at most; 128 to 1024 timed alike on 2 cores
#: the similarity buffer's size at most (chunk x V float32): 256 queries at a 250k vocabulary, where
#: 512 made it 0.5 GB, 1.3x e5-small's float32 matrix; 512 at an 8B model's 128k
BUFFER_BYTES = 2**28
GROUP = 64  # columns per group maximum: small enough that n groups hold few spare columns
#: screening precision -> candidates kept beyond k; a coarser screen needs a wider net
MARGINS = {"float32": 8, "float16": 32, "bfloat16": 128}
COUNT_TILE = 256  # columns compared at once when counting ranks: 512 x 256 float32 = 0.5 MB, within a core's L2
#: candidate values rescored at once (candidates x width): 50 MB float32 + 0.1 GB float64, at any
#: width (2**15 candidates at e5's 384; a count of candidates alone made 6.4 GB at an 8B model's 4096)
BUDGET = 2**15 * 384


def top_k_neighbours(
    unit: np.ndarray,
    query_ids: np.ndarray,
    k: int,
    *,
    exclude_self: bool = True,
    exclude: Sequence[np.ndarray] | None = None,
    device: str = "cpu",
    chunk_size: int | None = None,
    precision: str = "auto",
    margin: int | None = None,
    normalise: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most similar rows of ``unit`` for each query id: (ids, similarities), each Q x k.

    Rows are ordered by exact similarity descending, then id ascending; the result does not
    depend on ``precision`` ("auto": float16 on CUDA, else float32; or "float32", "float16",
    "bfloat16") nor on ``margin`` (candidates beyond k; None: ``MARGINS[precision]``), only
    the time does. Raises ValueError when a query has fewer than ``k`` rows left after its
    exclusions.

    >>> unit = np.array([[1, 0], [0.8, 0.6], [0, 1], [-1, 0]], dtype=np.float32)
    >>> ids, sims = top_k_neighbours(unit, np.array([0, 2]), 2)
    >>> ids
    array([[1, 2],
           [1, 0]])
    >>> sims.round(2)
    array([[0.8, 0. ],
           [0.6, 0. ]], dtype=float32)
    """
    query_ids = _check(unit, query_ids, exclude)
    precision = _resolve_precision(precision, device)
    if k > len(unit):
        raise ValueError(f"k={k} exceeds the {len(unit)} rows of the vocabulary")
    n = min(len(unit), k + (MARGINS[precision] if margin is None else margin))
    chunk_size = chunk_size or default_chunk(len(unit))
    ids_out = np.empty((len(query_ids), k), dtype=np.int64)
    sims_out = np.empty((len(query_ids), k), dtype=np.float32)
    matrix = _rows(unit, device, normalise)
    bound = screening_error(precision, unit.shape[1])
    for start, screen, excluded in _similarity_chunks(matrix, query_ids, exclude_self, exclude, chunk_size, _dtype(precision)):
        _mask(screen, excluded)
        rows = matrix.gather(_tensor(query_ids[start : start + len(screen)], matrix.device))
        ids, vals = _proven_top_k(matrix, rows, screen, k, n, bound)
        ids_out[start : start + len(ids)] = ids.cpu().numpy()
        sims_out[start : start + len(ids)] = vals.cpu().numpy()
    return ids_out, sims_out


def best_target_ranks(
    unit: np.ndarray,
    query_ids: np.ndarray,
    target_groups: Sequence[Sequence[np.ndarray]],
    *,
    exclude_self: bool = True,
    exclude: Sequence[np.ndarray] | None = None,
    device: str = "cpu",
    chunk_size: int | None = None,
    normalise: bool = False,
) -> list[np.ndarray]:
    """For each query and each of its (non-empty) groups of target ids, the rank of the group's
    best target (0 = nearest): one array per query, one rank per group.

    A rank is the number of non-excluded rows with a strictly larger (float32) similarity to
    the query, so a target tied with others gets the best rank of the tie; a target that is
    itself excluded is ranked by its similarity all the same. Why groups: task 3 asks, for one
    English query, where each language's best translation ranks; the query's similarity row
    is computed once for all languages, and each group costs one comparison pass, not one
    per target.

    >>> unit = np.array([[1, 0], [0.8, 0.6], [0.6, 0.8], [0, 1]], dtype=np.float32)
    >>> best_target_ranks(unit, np.array([0]), [[np.array([2, 3]), np.array([1])]])
    [array([1, 0])]
    """
    query_ids = _check(unit, query_ids, exclude)
    if len(target_groups) != len(query_ids):
        raise ValueError(f"target_groups has {len(target_groups)} entries for {len(query_ids)} queries")
    if any(len(group) == 0 for groups in target_groups for group in groups):
        raise ValueError("every target group needs at least one target id")
    if len(unit) >= 2**24:
        raise ValueError(f"{len(unit)} rows: counts in float32 are exact below 2**24 rows only")
    import torch

    order = np.argsort([-len(groups) for groups in target_groups], kind="stable")  # most groups first
    chunk_size = chunk_size or default_chunk(len(unit))
    matrix = _rows(unit, device, normalise)
    ranks: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * len(query_ids)
    above = torch.empty((min(chunk_size, len(query_ids)), min(COUNT_TILE, len(unit))), device=matrix.device)
    chunks = _similarity_chunks(matrix, query_ids[order], exclude_self,
                                None if exclude is None else [exclude[i] for i in order], chunk_size, torch.float32)
    for start, sims, excluded in chunks:
        positions = order[start : start + len(sims)]
        best = _best_scores(sims, [target_groups[i] for i in positions])  # before masking
        _mask(sims, excluded)
        for i, row in zip(positions, _count_above(sims, best, above)):
            ranks[i] = row[: len(target_groups[i])]
    return ranks


def default_chunk(rows: int) -> int:
    """Queries per chunk: ``DEFAULT_CHUNK``, fewer where their similarity rows would pass
    ``BUFFER_BYTES`` (at least 64). The chunk size changes memory and time, never a result.

    >>> default_chunk(250_037), default_chunk(128_256), default_chunk(1000)
    (268, 512, 512)
    """
    return max(64, min(DEFAULT_CHUNK, BUFFER_BYTES // (4 * rows)))


def screening_error(precision: str, dim: int) -> float:
    """Bound on |screening score - exact score| for two rows of norm <= 1 (float64).

    float32 inputs are exact; a dot product of ``dim`` terms accumulated in float32 errs by at
    most ``dim * 2**-24`` (times the norms' product, <= 1 up to float32 rounding: hence 1.01).
    Half-precision inputs add their own rounding (2u, u = eps/2), the half output one more u,
    and subnormal components an absolute error of half their spacing each, at most
    ``sqrt(dim)`` times that against a unit row -- all taken twice over for safety.
    """
    accumulate = 1.01 * dim * 2.0**-24
    if precision == "float32":
        return accumulate
    import torch

    info = torch.finfo(_dtype(precision))
    unit_roundoff, subnormal = info.eps / 2, info.smallest_normal * info.eps / 2
    return accumulate + 2 * (3 * unit_roundoff + unit_roundoff**2 + 2 * np.sqrt(dim) * subnormal)


def _check(unit: np.ndarray, query_ids: np.ndarray, exclude: Sequence[np.ndarray] | None) -> np.ndarray:
    """Validated query ids as int64; ValueError naming the bad argument otherwise."""
    query_ids = np.asarray(query_ids, dtype=np.int64)
    if unit.ndim != 2:
        raise ValueError(f"unit must be a 2-D matrix, got shape {unit.shape}")
    if query_ids.ndim != 1 or (len(query_ids) and (query_ids.min() < 0 or query_ids.max() >= len(unit))):
        raise ValueError(f"query_ids must be a 1-D array of row ids in [0, {len(unit)})")
    if exclude is not None and len(exclude) != len(query_ids):
        raise ValueError(f"exclude has {len(exclude)} entries for {len(query_ids)} queries")
    return query_ids


def _resolve_precision(precision: str, device: str) -> str:
    """"auto" -> float16 on CUDA (tensor cores), float32 elsewhere; ValueError for unknown names."""
    if precision == "auto":
        return "float16" if str(device).startswith("cuda") else "float32"
    if precision not in MARGINS:
        raise ValueError(f"precision={precision!r}: use 'auto' or one of {', '.join(MARGINS)}")
    return precision


def _dtype(precision: str) -> "torch.dtype":
    import torch

    return getattr(torch, precision)


class _Held:
    """Unit rows held whole, as one float32 tensor on the device (the caller's unit matrix)."""

    def __init__(self, matrix: "torch.Tensor") -> None:
        self.matrix, self.device, self.shape = matrix, matrix.device, matrix.shape
        self._half: "torch.Tensor | None" = None

    def __len__(self) -> int:
        return len(self.matrix)

    def gather(self, ids: "torch.Tensor") -> "torch.Tensor":
        """Unit rows ``ids`` (any shape of ids; float32)."""
        return self.matrix[ids]

    def similarities(self, queries: "torch.Tensor", out: "torch.Tensor") -> None:
        """``out`` = ``queries`` x every row, in ``out``'s dtype."""
        import torch

        matrix = self.matrix if out.dtype == self.matrix.dtype else self._screen(out.dtype)
        torch.mm(queries.to(out.dtype), matrix.T, out=out)

    def _screen(self, dtype: "torch.dtype") -> "torch.Tensor":
        """The matrix in a half-precision screening dtype, converted once."""
        if self._half is None or self._half.dtype != dtype:
            self._half = self.matrix.to(dtype)
        return self._half


class _Normalised:
    """Unit rows of a raw matrix (numpy, or a torch tensor of any float dtype, on the CPU),
    normalised a block at a time when they are needed: never a unit copy of the whole matrix.

    The rows' norms are taken once, in the finiteness pass (a row's float32 norm does not depend
    on the block it is taken in), so each chunk of queries pays one division per row, not a norm."""

    def __init__(self, raw: Any, device: str) -> None:
        import torch

        self.raw, self.device, self.shape = raw, torch.device(device), tuple(raw.shape)
        self.norms = np.empty((len(raw), 1), dtype=np.float32)  # as unit_rows divides: norm, at least 1e-12
        squares = np.empty((min(CHUNK, len(raw)), raw.shape[1]), dtype=np.float32)
        for start in range(0, len(raw), CHUNK):  # a block at a time: the finiteness check copies nothing whole
            block = self._float32_block(start)
            if not np.isfinite(block).all():
                raise ValueError("the matrix holds NaN or infinite values; similarities would be meaningless")
            np.maximum(row_norms(block, squares), 1e-12, out=self.norms[start : start + len(block)])

    def __len__(self) -> int:
        return self.shape[0]

    def gather(self, ids: "torch.Tensor") -> "torch.Tensor":
        import torch

        at = ids.flatten().cpu().numpy()
        flat = float32_rows(self.raw, at)  # a new array: divided in place by the norms taken once
        np.divide(flat, self.norms[at], out=flat)
        return torch.from_numpy(flat).to(self.device).view(*ids.shape, self.shape[1])

    def similarities(self, queries: "torch.Tensor", out: "torch.Tensor") -> None:
        """``out`` = ``queries`` x every unit row, a block of ``CHUNK`` rows at a time through two
        buffers made once per call: a block's unit rows and its products (tens of MB each, which
        the allocator would otherwise map and fault in anew for every block)."""
        import torch

        queries = queries.to(out.dtype)
        unit = np.empty((min(CHUNK, len(self)), self.shape[1]), dtype=np.float32)
        products = torch.empty(len(queries) * len(unit), dtype=out.dtype, device=self.device)
        for start in range(0, len(self), CHUNK):
            rows = self._float32_block(start)
            np.divide(rows, self.norms[start : start + len(rows)], out=unit[: len(rows)])
            block = torch.from_numpy(unit[: len(rows)]).to(self.device)
            product = products[: len(queries) * len(rows)].view(len(queries), len(rows))
            torch.mm(queries, block.to(out.dtype).T, out=product)
            out[:, start : start + len(rows)] = product

    def _float32_block(self, start: int) -> np.ndarray:
        """Rows ``start`` to ``start + CHUNK`` as float32: a view of a float32 numpy matrix, else a copy."""
        if isinstance(self.raw, np.ndarray) and self.raw.dtype == np.float32:
            return self.raw[start : start + CHUNK]
        return float32_rows(self.raw, np.arange(start, min(start + CHUNK, len(self.raw))))


def _rows(unit: Any, device: str, normalise: bool) -> "_Held | _Normalised":
    """The rows similarities are taken over: ``unit`` held on ``device``; or, for a raw matrix,
    normalised as needed on the CPU, and normalised block by block into one device tensor on an
    accelerator (whose memory holds that copy, not the host's)."""
    import torch

    if not normalise:
        return _Held(_on_device(unit, device))
    if torch.device(device).type == "cpu":
        return _Normalised(unit, device)
    held = torch.empty(tuple(unit.shape), dtype=torch.float32, device=device)
    for start in range(0, len(unit), CHUNK):
        held[start : start + CHUNK] = torch.from_numpy(unit_rows(unit, np.arange(start, min(start + CHUNK, len(unit)))))
    return _Held(_finite(held))


def _on_device(unit: np.ndarray, device: str) -> "torch.Tensor":
    """``unit`` as a float32 tensor on ``device``; ValueError if it holds NaN or infinities.

    The check is one multi-threaded min/max pass (NaN propagates), not a V x d mask.
    """
    import torch

    return _finite(torch.from_numpy(np.ascontiguousarray(unit, dtype=np.float32)).to(device))


def _finite(matrix: "torch.Tensor") -> "torch.Tensor":
    """``matrix``, or a ValueError if it holds NaN or infinities (one min/max pass: NaN propagates)."""
    import torch

    if matrix.numel() and not all(torch.isfinite(v) for v in torch.aminmax(matrix)):
        raise ValueError("unit holds NaN or infinite values; similarities would be meaningless")
    return matrix


def _tensor(values: np.ndarray, device: "torch.device") -> "torch.Tensor":
    import torch

    return torch.as_tensor(values, device=device)


def _similarity_chunks(matrix: "_Held | _Normalised", query_ids: np.ndarray, exclude_self: bool,
                       exclude: Sequence[np.ndarray] | None, chunk_size: int,
                       dtype: "torch.dtype") -> Iterator[tuple[int, "torch.Tensor", tuple]]:
    """Yield (start, chunk x V similarities in ``dtype``, excluded cells for ``_mask``).

    The yielded block is a view of one buffer reused by the next chunk: consume it first.
    """
    import torch

    buffer = torch.empty((min(chunk_size, len(query_ids)), len(matrix)), dtype=dtype, device=matrix.device)
    starts = range(0, len(query_ids), chunk_size)
    for start in progress(starts, desc="neighbours", total=len(starts), unit="chunk"):
        rows = query_ids[start : start + chunk_size]
        sims = buffer[: len(rows)]
        with _float32_accumulation():
            matrix.similarities(matrix.gather(_tensor(rows, matrix.device)), sims)
        extra = None if exclude is None else exclude[start : start + chunk_size]
        yield start, sims, _excluded_cells(rows, exclude_self, extra)


def _mask(sims: "torch.Tensor", cells: tuple[np.ndarray, np.ndarray]) -> None:
    """Set the excluded (row position, column id) cells to -inf: never returned, never counted."""
    sims[_tensor(cells[0], sims.device), _tensor(cells[1], sims.device)] = -np.inf


def _excluded_cells(rows: np.ndarray, exclude_self: bool,
                    extra: Sequence[np.ndarray] | None) -> tuple[np.ndarray, np.ndarray]:
    """(row positions, column ids) of the chunk's excluded cells."""
    empty = [np.empty(0, dtype=np.int64)] * len(rows)
    lists = empty if extra is None else [np.asarray(e, dtype=np.int64) for e in extra]
    if exclude_self:
        lists = [np.append(e, r) for e, r in zip(lists, rows)]
    at_row = np.repeat(np.arange(len(rows)), [len(e) for e in lists])
    return at_row, np.concatenate(lists) if lists else np.empty(0, dtype=np.int64)


@contextlib.contextmanager
def _float32_accumulation() -> Iterator[None]:
    """Forbid cuBLAS's reduced-precision (half) reductions, which ``screening_error`` does not bound."""
    import torch

    flags = torch.backends.cuda.matmul
    saved = flags.allow_fp16_reduced_precision_reduction, flags.allow_bf16_reduced_precision_reduction
    flags.allow_fp16_reduced_precision_reduction = flags.allow_bf16_reduced_precision_reduction = False
    try:
        yield
    finally:
        flags.allow_fp16_reduced_precision_reduction, flags.allow_bf16_reduced_precision_reduction = saved


def _proven_top_k(matrix: "_Held | _Normalised", rows: "torch.Tensor", screen: "torch.Tensor", k: int, n: int,
                  bound: float) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Top ``k`` of each screened row, exact: ``n`` candidates rescored, unproven rows widened.

    A widened row takes every column whose bound reaches its k-th exact score (at least twice
    ``n``), and is proven again; at ``n = V`` nothing is left out and the proof is trivial.
    Rows go in batches of at most ``BUDGET`` candidate values, which bounds the float64 copies.
    """
    import torch

    ids = torch.empty((len(rows), k), dtype=torch.int64, device=screen.device)
    vals = torch.empty((len(rows), k), dtype=torch.float64, device=screen.device)
    pending = torch.arange(len(rows), device=screen.device)
    while len(pending):
        unproven = []
        for part in pending.split(max(1, BUDGET // (n * matrix.shape[1]))):
            at = _as_slice(part)
            ids[at], vals[at], failed = _rescored_top_k(matrix, rows[at], screen[at], k, n, bound)
            unproven.append(part[failed])
        pending = torch.cat(unproven)
        if len(pending):
            reach = (screen[pending].double() + bound >= vals[pending, -1:]).sum(dim=1).max()
            n = min(screen.shape[1], max(int(reach), 2 * n))
    if torch.isneginf(vals[:, -1]).any():
        raise ValueError(f"a query has fewer than k={k} rows left after its exclusions")
    return ids, vals.float()


def _as_slice(part: "torch.Tensor") -> "slice | torch.Tensor":
    """Ascending row positions as a slice when they are consecutive: a view, not a 0.5 GB copy."""
    first, last = int(part[0]), int(part[-1])
    return slice(first, last + 1) if last + 1 - first == len(part) else part


def _rescored_top_k(matrix: "_Held | _Normalised", rows: "torch.Tensor", screen: "torch.Tensor", k: int, n: int,
                    bound: float) -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]:
    """(ids, float64 scores) of the exact top ``k`` among ``n`` best-screened columns, and the
    positions of rows where a column left out might still belong in the top ``k``."""
    import torch

    cand = _top_candidates(screen, n)
    screened = screen.gather(1, cand)
    exact = _exact(matrix, rows, cand).masked_fill(torch.isneginf(screened), -np.inf)
    ids, vals = _ordered(cand, exact, k)
    if n >= screen.shape[1]:
        return ids, vals, torch.empty(0, dtype=torch.int64, device=screen.device)
    proven = vals[:, -1] > screened.min(dim=1).values.double() + bound
    return ids, vals, (~proven).nonzero().flatten()


def _top_candidates(screen: "torch.Tensor", n: int) -> "torch.Tensor":
    """Column ids of ``n`` highest values per row (ties arbitrary), via group maxima when V is large.

    A row's top-n values lie in its n groups with the largest maxima: a value outside them is
    topped by those n maxima. Ranking V/GROUP maxima and then n x GROUP columns is about three
    times faster than ``torch.topk`` over V on CPU.
    """
    import torch

    n_grouped = screen.shape[1] // GROUP * GROUP
    if n_grouped < 4 * n * GROUP:
        return torch.topk(screen, n, dim=1, sorted=False).indices
    maxima = screen[:, :n_grouped].unflatten(1, (-1, GROUP)).amax(dim=2)
    groups = torch.topk(maxima, n, dim=1, sorted=False).indices
    offsets = torch.arange(GROUP, device=screen.device)
    tail = torch.arange(n_grouped, screen.shape[1], device=screen.device).expand(len(screen), -1)
    columns = torch.cat([(groups[:, :, None] * GROUP + offsets).flatten(1), tail], dim=1)
    return columns.gather(1, torch.topk(screen.gather(1, columns), n, dim=1, sorted=False).indices)


def _exact(matrix: "_Held | _Normalised", rows: "torch.Tensor", columns: "torch.Tensor") -> "torch.Tensor":
    """float64 dot products of each query row with its own candidate rows (R x C)."""
    import torch

    return torch.bmm(matrix.gather(columns).double(), rows.double()[:, :, None])[:, :, 0]


def _ordered(columns: "torch.Tensor", scores: "torch.Tensor", k: int) -> tuple["torch.Tensor", "torch.Tensor"]:
    """First ``k`` (column, score) of each row by (score descending, column ascending)."""
    import torch

    columns, by_id = torch.sort(columns, dim=1)
    scores, by_score = torch.sort(scores.gather(1, by_id), dim=1, descending=True, stable=True)
    return columns.gather(1, by_score)[:, :k], scores[:, :k]


def _best_scores(sims: "torch.Tensor", groups: Sequence[Sequence[np.ndarray]]) -> "torch.Tensor":
    """Rows x most-groups matrix of each group's highest similarity; +inf pads missing groups."""
    import torch

    lengths = np.array([len(row) for row in groups])
    flat = [np.asarray(g, dtype=np.int64) for row in groups for g in row] or [np.empty(0, dtype=np.int64)]
    sizes = [len(g) for g in flat]
    width = max(1, int(lengths.max()))
    cells = np.repeat(np.concatenate([r * width + np.arange(n) for r, n in enumerate(lengths)]), sizes[: lengths.sum()])
    at_row = _tensor(cells // width, sims.device)
    best = torch.full((len(groups), width), -np.inf, dtype=sims.dtype, device=sims.device)
    scores = sims[at_row, _tensor(np.concatenate(flat), sims.device)]
    best.view(-1).scatter_reduce_(0, _tensor(cells, sims.device), scores, "amax")
    missing = torch.arange(width, device=sims.device) >= _tensor(lengths, sims.device)[:, None]
    return best.masked_fill_(missing, np.inf)


def _count_above(sims: "torch.Tensor", thresholds: "torch.Tensor", above: "torch.Tensor") -> np.ndarray:
    """Rows x slots counts of entries of each row of ``sims`` strictly above each threshold.

    Rows come sorted by their number of groups, so a slot's rows are a prefix: one comparison
    pass per slot on a view, no copy, into ``above`` (a float buffer of ``COUNT_TILE`` columns).
    The passes go a tile of ``COUNT_TILE`` columns at a time, every slot over one tile before the
    next: the tile stays in cache across the slots, where a whole-row pass per slot read the
    chunk's similarities from memory once per slot (most of task 3's time on CPU).
    Counting sums float 0/1, exact below 2**24 rows and five times faster than summing bools.

    >>> import torch
    >>> sims = torch.tensor([[0.9, 0.1, 0.5, 0.7], [0.2, 0.3, 0.4, 0.1]])
    >>> _count_above(sims, torch.tensor([[0.5, 0.1], [0.3, float("inf")]]), torch.empty(2, COUNT_TILE))
    array([[2, 3],
           [1, 0]])
    """
    import torch

    counts = torch.zeros(thresholds.shape, dtype=torch.float32, device=sims.device)
    prefixes = [int((~torch.isposinf(thresholds[:, slot])).sum()) for slot in range(thresholds.shape[1])]
    for begin in range(0, sims.shape[1], COUNT_TILE):
        tile = sims[:, begin : begin + COUNT_TILE]
        for slot, rows in enumerate(prefixes):
            flags = above[:rows, : tile.shape[1]]
            torch.gt(tile[:rows], thresholds[:rows, slot : slot + 1], out=flags)
            counts[:rows, slot] += flags.sum(dim=1)
    return counts.cpu().numpy().astype(np.int64)
