"""Task 2 and the exact neighbour search: brute-force agreement, ties, exclusions, counts."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xlingbench.core.errors import UserError
from xlingbench.core.params import build
from xlingbench.tasks import neighbour_script_count as task
from xlingbench.compute.neighbours import top_k_neighbours
from tests.tiny_models import fake_inputs


def unit_rows(n: int, dim: int = 12, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(n, dim))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def brute_force(unit: np.ndarray, queries: np.ndarray, k: int, exclude: list[list[int]] | None = None):
    """Neighbours by a plain loop: sort each row by (similarity desc, id asc)."""
    out = []
    for n, q in enumerate(queries):
        sims = unit @ unit[q]
        banned = {int(q)} | set(exclude[n] if exclude else [])
        order = sorted((i for i in range(len(unit)) if i not in banned), key=lambda i: (-sims[i], i))
        out.append(order[:k])
    return np.array(out)


@pytest.mark.parametrize("chunk_size", [1, 7, 1000])
def test_top_k_matches_brute_force(chunk_size: int) -> None:
    unit = unit_rows(300)
    queries = np.array([0, 5, 17, 299, 150])
    ids, sims = top_k_neighbours(unit, queries, 8, chunk_size=chunk_size)
    np.testing.assert_array_equal(ids, brute_force(unit, queries, 8))
    np.testing.assert_allclose(sims, np.take_along_axis(unit[queries] @ unit.T, ids, axis=1), rtol=1e-5)


def test_ties_go_to_the_lower_id_even_across_the_k_boundary() -> None:
    unit = unit_rows(50)
    unit[[40, 3, 25, 11]] = unit[7]  # four exact copies of row 7
    ids, _ = top_k_neighbours(unit, np.array([7]), 2)
    assert ids.tolist() == [[3, 11]]  # 3, 11, 25, 40 tie at similarity 1; the lowest two win
    ids, _ = top_k_neighbours(unit, np.array([7]), 4, exclude_self=False)
    assert ids.tolist() == [[3, 7, 11, 25]]


def test_exclusions_per_query() -> None:
    unit = unit_rows(120)
    queries = np.array([4, 9])
    exclude = [[1, 2, 3, 50], [9, 77]]
    ids, _ = top_k_neighbours(unit, queries, 5, exclude=[np.array(e) for e in exclude], chunk_size=1)
    np.testing.assert_array_equal(ids, brute_force(unit, queries, 5, exclude))


def test_too_few_candidates_is_an_error() -> None:
    with pytest.raises(ValueError, match="fewer than k"):
        top_k_neighbours(unit_rows(5), np.array([0]), 4, exclude=[np.array([1])])


def test_category_counts_match_a_loop() -> None:
    rng = np.random.default_rng(0)
    labels = np.array(rng.choice(["LATIN", "CJK", "S", None], size=400), dtype=object)
    unit = unit_rows(400)
    queries = np.arange(0, 400, 3)
    neighbours, _ = top_k_neighbours(unit, queries, 50)
    counts = task.category_counts(queries, neighbours, labels)
    expected = [max(1, len({labels[i] for i in [q, *row] if labels[i] is not None})) for q, row in zip(queries, neighbours)]
    assert counts.tolist() == expected


def test_unlabelled_only_neighbourhood_counts_one() -> None:
    labels = np.array([None, None, None], dtype=object)
    assert task.category_counts(np.array([0]), np.array([[1, 2]]), labels).tolist() == [1]


def test_sample_is_seeded_and_sized() -> None:
    candidates = np.arange(10_000)
    first = task.sample_queries(candidates, 0.01, seed=5)
    assert len(first) == 100 and np.all(np.diff(first) > 0)
    np.testing.assert_array_equal(first, task.sample_queries(candidates, 0.01, seed=5))
    assert not np.array_equal(first, task.sample_queries(candidates, 0.01, seed=6))
    np.testing.assert_array_equal(task.sample_queries(candidates, 1.0, seed=5), candidates)
    with pytest.raises(UserError, match="sample=0"):
        build("neighbour_script_count", task.Params, {"sample": "0"})


def test_bootstrap_interval_brackets_the_mean_and_is_seeded() -> None:
    values = np.random.default_rng(0).integers(1, 8, size=500).astype(float)
    low, high = task.bootstrap_interval(values, seed=1, resamples=500)
    assert low < values.mean() < high
    assert (low, high) == task.bootstrap_interval(values, seed=1, resamples=500)


def clustered_vocabulary(mixed: bool) -> tuple[list[str], np.ndarray]:
    """60 Latin-word and 60 Han tokens in 20 tight meaning clusters of 6.

    ``mixed``: each cluster holds 3 Latin and 3 Han tokens (a cross-lingual space); otherwise a
    cluster holds one script only (a language-clustered space).
    """
    latin = [f"▁{a}{b}" for a in "bcdfgh" for b in "aeiouy"][:60]
    latin += [f"▁{a}{b}x" for a in "bcdfgh" for b in "aeiouy"][: 60 - len(latin)]
    han = [chr(0x4E00 + i) for i in range(60)]
    centres = unit_rows(20, dim=32, seed=1)
    cluster_of = [i // 3 for i in range(60)] if mixed else [i // 6 for i in range(60)]
    cluster_of += [i // 3 for i in range(60)] if mixed else [10 + i // 6 for i in range(60)]
    noise = 0.01 * np.random.default_rng(2).normal(size=(120, 32))
    return latin + han, (centres[cluster_of] + noise).astype(np.float32)


@pytest.mark.parametrize("mixed, expected", [(False, 1.0), (True, 2.0)])
def test_adapter_counts_planted_neighbourhoods(tmp_path: Path, mixed: bool, expected: float) -> None:
    tokens, matrix = clustered_vocabulary(mixed)
    inputs = fake_inputs(tokens, matrix, tmp_path)
    result = task.TASK.run(inputs, task.Params(labels="script", sample=1.0, neighbours=5))
    assert result.metrics["mean_count"] == expected
    assert result.metrics["std_count"] == 0.0
    assert result.intervals["mean_count"] == (expected, expected)
    assert result.params["neighbours"] == 5 and result.info["queries"] == 120
    assert sum(row["queries"] for row in result.tables["distribution"]) == 120
    assert len([p for p in (tmp_path / "neighbours").iterdir() if p.suffix != ".lock"]) == 1  # the neighbour table was cached


def test_adapter_caches_one_neighbour_table_per_query_sample(tmp_path: Path) -> None:
    tokens, matrix = clustered_vocabulary(mixed=True)
    params = task.Params(labels="paper", sample=0.5, neighbours=5, seed=3)
    first = task.TASK.run(fake_inputs(tokens, matrix, tmp_path), params)
    again = task.TASK.run(fake_inputs(tokens, matrix, tmp_path), params)
    assert first.metrics == again.metrics and first.info["queries"] == 60
    assert len([p for p in (tmp_path / "neighbours").iterdir() if p.suffix != ".lock"]) == 1
    task.TASK.run(fake_inputs(tokens, matrix, tmp_path), task.Params(labels="paper", sample=0.5, neighbours=5, seed=4))
    assert len([p for p in (tmp_path / "neighbours").iterdir() if p.suffix != ".lock"]) == 2
