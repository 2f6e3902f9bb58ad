"""Exact neighbours against numpy float64 brute force: grouped candidates, half-precision screens
proven exact on near-ties and duplicates, widened rows, the screening bound; group ranks vs a loop."""
from __future__ import annotations

import numpy as np
import pytest

from xlingbench.compute.neighbours import GROUP, best_target_ranks, screening_error, top_k_neighbours


def unit_rows(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(n, dim))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def brute_force(unit: np.ndarray, queries: np.ndarray, k: int, exclude: list[np.ndarray] | None = None):
    """(ids, float64 scores) by numpy: lexsort each row by (float64 similarity desc, id asc)."""
    sims = unit[queries].astype(np.float64) @ unit.T.astype(np.float64)
    ids = []
    for n, q in enumerate(queries):
        row = sims[n].copy()
        row[[q, *([] if exclude is None else exclude[n])]] = -np.inf
        ids.append(np.lexsort((np.arange(len(row)), -row))[:k])
    ids = np.array(ids)
    return ids, np.take_along_axis(sims, ids, axis=1)


def near_ties(n: int = 6000, dim: int = 16, seed: int = 1) -> np.ndarray:
    """Rows whose similarities to row 0 differ by ~1e-6 around rank 10, plus exact duplicates.

    Half precision cannot tell such rows apart (bfloat16 resolves ~4e-3), float64 can.
    """
    unit = unit_rows(n, dim, seed)
    base, other = unit[0].astype(np.float64), unit[1].astype(np.float64)
    other -= (other @ base) * base
    other /= np.linalg.norm(other)
    for i in range(2, 40):  # cosines 0.9, 0.9 - 1e-6, ... to row 0, interleaved ids
        angle = np.arccos(0.9 - 1e-6 * (i % 19))
        unit[i * 37 % n] = np.cos(angle) * base + np.sin(angle) * other
    unit[[4000, 4100, 4200]] = unit[2 * 37]  # exact ties with one of them
    return unit


def test_grouped_candidates_match_brute_force() -> None:
    unit = unit_rows(4 * 60 * GROUP + 37)  # large enough for group maxima, with a ragged tail
    queries = np.array([0, 5, 17, 999, len(unit) - 1])
    ids, sims = top_k_neighbours(unit, queries, 50)
    want_ids, want_sims = brute_force(unit, queries, 50)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(sims, want_sims, rtol=1e-6)


@pytest.mark.parametrize("precision", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("margin", [None, 0])
def test_every_screen_gives_the_exact_order_on_near_ties(precision: str, margin: int | None) -> None:
    unit = near_ties()
    queries = np.array([0, 1, 2, 74, 4000, 3])
    exclude = [np.array([37, 111]), np.array([], dtype=np.int64), np.array([5]), np.array([], dtype=np.int64),
               np.array([4100]), np.array([], dtype=np.int64)]
    ids, _ = top_k_neighbours(unit, queries, 12, exclude=exclude, precision=precision, margin=margin, chunk_size=4)
    np.testing.assert_array_equal(ids, brute_force(unit, queries, 12, exclude)[0])


def test_near_ties_are_really_below_half_precision() -> None:
    """The planted cosines are ordered in float64 but collapse in bfloat16: the test above can fail."""
    import torch

    unit = near_ties()
    planted = [i * 37 % len(unit) for i in range(2, 40)]
    exact = unit[planted].astype(np.float64) @ unit[0].astype(np.float64)
    screened = (torch.from_numpy(unit[planted]).bfloat16() @ torch.from_numpy(unit[0]).bfloat16()).float().numpy()
    assert len(np.unique(exact)) > 15 and len(np.unique(screened)) < 4


@pytest.mark.parametrize("precision", ["float32", "float16", "bfloat16"])
def test_screening_error_bounds_the_screen(precision: str) -> None:
    import torch

    unit = unit_rows(3000, 384, seed=2)
    matrix = torch.from_numpy(unit)
    screen = (matrix[:200].to(getattr(torch, precision)) @ matrix.to(getattr(torch, precision)).T).double()
    exact = matrix[:200].double() @ matrix.double().T
    error = float((screen - exact).abs().max())
    bound = screening_error(precision, 384)
    assert error <= bound  # guaranteed on every CPU, whatever its summation order or vector width
    # Not vacuous: within 3x the textbook worst case (Higham's gamma_n for a float32 dot product of
    # 384 terms, plus the rounding of half-precision inputs and output). Measured error is no test of
    # that: an AVX-512 CPU sums in wider blocks and errs far below the worst case.
    u32, u = 2.0**-24, torch.finfo(getattr(torch, precision)).eps / 2
    textbook = 384 * u32 / (1 - 384 * u32) + (0.0 if precision == "float32" else 3 * u)
    assert bound <= 3 * textbook


def test_unknown_precision_is_an_error() -> None:
    with pytest.raises(ValueError, match="precision="):
        top_k_neighbours(unit_rows(10), np.array([0]), 2, precision="int8")


@pytest.mark.parametrize("chunk_size", [1, 3, 512])
def test_group_ranks_match_a_loop(chunk_size: int) -> None:
    unit = unit_rows(500)
    rng = np.random.default_rng(4)
    queries = np.array([3, 100, 3, 499, 7])  # a repeated query is ranked the same both times
    groups = [[rng.choice(500, size=s, replace=False) for s in sizes] for sizes in ([2, 1], [4], [1, 3, 2], [], [1, 1])]
    groups[0].append(np.array([3]))  # the query itself: excluded, yet ranked by its similarity
    exclude = [rng.choice(500, size=s, replace=False) for s in (5, 0, 1, 2, 0)]
    ranks = best_target_ranks(unit, queries, groups, exclude=exclude, chunk_size=chunk_size)
    for q, wanted, banned, got in zip(queries, groups, exclude, ranks):
        sims = unit @ unit[q]
        allowed = np.ones(len(unit), dtype=bool)
        allowed[[q, *banned]] = False
        assert got.tolist() == [int((sims[allowed] > sims[g].max()).sum()) for g in wanted]


def test_an_empty_target_group_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one target"):
        best_target_ranks(unit_rows(10), np.array([0]), [[np.array([1]), np.array([], dtype=np.int64)]])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_rows_are_an_error(bad: float) -> None:
    unit = unit_rows(50)
    unit[31, 5] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        top_k_neighbours(unit, np.array([0]), 3)
    with pytest.raises(ValueError, match="NaN or infinite"):
        best_target_ranks(unit, np.array([0]), [[np.array([1])]])
