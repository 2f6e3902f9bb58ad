"""K-means on torch: planted clusters, agreement with scikit-learn, several batched starts, determinism, K shrinking."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

import xlingbench.compute.kmeans as km
from xlingbench.compute.kmeans import choose_k, kmeans
from xlingbench.core.errors import UserError


def planted(n_clusters: int = 12, per_cluster: int = 40, dim: int = 16, seed: int = 0,
            scale: float = 10.0, spread: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs (centres drawn with ``scale``, points with ``spread``: by default well
    separated) and their true labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=scale, size=(n_clusters, dim))
    truth = np.repeat(np.arange(n_clusters), per_cluster)
    return (centres[truth] + rng.normal(scale=spread, size=(len(truth), dim))).astype(np.float32), truth


def crowded(seed: int) -> np.ndarray:
    """20 blobs close enough that one k-means++ start often merges two of them (single starts
    end 15-35% above the best on most seeds) while the best of 10 finds the planted optimum."""
    return planted(n_clusters=20, per_cluster=50, dim=6, seed=seed, scale=3.0, spread=0.5)[0]


def random_data(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(600, 8)).astype(np.float32)


def test_recovers_planted_clusters() -> None:
    x, truth = planted()
    result = kmeans(x, 12, seed=3)
    assert adjusted_rand_score(truth, result.labels) == 1.0
    assert result.converged
    assert result.centroids.shape == (12, 16)


def test_matches_sklearn_inertia_from_the_same_init() -> None:
    x = np.random.default_rng(1).normal(size=(3000, 24)).astype(np.float32)
    init = x[np.random.default_rng(2).choice(len(x), 40, replace=False)]
    ours = kmeans(x, 40, init=init, max_iter=300, tol=1e-4)
    theirs = KMeans(40, init=init, n_init=1, max_iter=300, tol=1e-4).fit(x)
    assert ours.inertia == pytest.approx(theirs.inertia_, rel=1e-4)
    assert adjusted_rand_score(ours.labels, theirs.labels_) > 0.99


def test_inertia_is_the_sum_of_squared_distances_to_assigned_centroids() -> None:
    x = np.random.default_rng(4).normal(size=(500, 8)).astype(np.float32)
    result = kmeans(x, 7, seed=0)
    assert result.inertia == pytest.approx(float(((x - result.centroids[result.labels]) ** 2).sum()), rel=1e-4)


def test_deterministic_for_a_seed_and_seed_matters() -> None:
    x = np.random.default_rng(5).normal(size=(800, 10)).astype(np.float32)
    first, again, other = kmeans(x, 20, seed=7), kmeans(x, 20, seed=7), kmeans(x, 20, seed=8)
    assert np.array_equal(first.labels, again.labels) and first.inertia == again.inertia
    assert not np.array_equal(first.centroids, other.centroids)


def test_chunked_distances_give_the_same_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.random.default_rng(6).normal(size=(1000, 12)).astype(np.float32)
    whole = kmeans(x, 9, seed=1)
    monkeypatch.setattr(km, "_DISTANCE_BLOCK", 9 * 37)  # 37 rows per chunk
    chunked = kmeans(x, 9, seed=1)
    assert np.array_equal(whole.labels, chunked.labels)


def test_float16_input_and_an_empty_cluster_is_refilled() -> None:
    x, _ = planted(n_clusters=4, per_cluster=30)
    init = np.vstack([x[[0, 30, 60]], np.full((1, x.shape[1]), 1e4, dtype=np.float32)])  # 4th centre far from all
    result = kmeans(x.astype(np.float16), 4, init=init)
    assert len(np.unique(result.labels)) == 4


def test_rejects_impossible_k_and_starts() -> None:
    with pytest.raises(ValueError):
        kmeans(np.zeros((3, 2), dtype=np.float32), 4)
    with pytest.raises(ValueError, match="n_init"):
        kmeans(np.zeros((3, 2), dtype=np.float32), 2, n_init=0)


@pytest.mark.parametrize("make", [crowded, random_data])
def test_ten_starts_are_never_worse_than_one_and_keep_the_best(make) -> None:
    gains = []
    for seed in range(4):
        x = make(seed)
        one, ten = kmeans(x, 20, seed=seed, n_init=1), kmeans(x, 20, seed=seed, n_init=10)
        assert ten.inertia <= one.inertia * (1 + 1e-6)
        assert len(ten.inertias) == 10 and ten.inertia == min(ten.inertias) == ten.inertias[ten.start]
        assert ten.inertias[0] == pytest.approx(one.inertia, rel=1e-6)  # start 0 is the single start
        assert ten.inertia == pytest.approx(float(((x - ten.centroids[ten.labels]) ** 2).sum()), rel=1e-4)
        gains.append(one.inertia / ten.inertia)
    assert max(gains) > 1.01  # the extra starts did find something better somewhere


def test_ten_starts_match_sklearn_ten_starts_on_planted_data() -> None:
    for seed in range(3):
        x = crowded(seed)
        ours = kmeans(x, 20, seed=seed)
        theirs = KMeans(20, n_init=10, random_state=seed).fit(x)
        assert ours.inertia == pytest.approx(theirs.inertia_, rel=0.01)


def test_starts_are_deterministic_and_the_same_batched_or_one_group_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    x = random_data(9)
    first, again = kmeans(x, 15, seed=4, n_init=6), kmeans(x, 15, seed=4, n_init=6)
    assert np.array_equal(first.labels, again.labels) and np.array_equal(first.centroids, again.centroids)
    assert first.inertias == again.inertias and len(set(first.inertias)) > 1
    trials = 2 + int(np.log(15))  # k-means++ candidates per step
    monkeypatch.setattr(km, "_DISTANCE_BLOCK", 4 * trials * len(x))  # seeded in groups of 4 starts: 4 + 2
    assert km._starts_per_group(len(x), 15, 6) == 4
    grouped = kmeans(x, 15, seed=4, n_init=6)
    monkeypatch.setattr(km, "_DISTANCE_BLOCK", trials * len(x))  # one start at a time, Lloyd in chunks of 160 rows
    sequential = kmeans(x, 15, seed=4, n_init=6)
    for other in (grouped, sequential):
        assert np.array_equal(first.labels, other.labels)
        assert other.inertias == pytest.approx(first.inertias, rel=1e-6)


def test_starts_side_by_side_on_two_threads_equal_one_after_another(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import torch

    x = word_vector_like(3, n=1500, dim=24)
    alone = kmeans(x, 40, seed=5, n_init=5)
    workers: set[str] = set()
    lloyd = km._lloyd

    def recording(*args, **kwargs):
        workers.add(threading.current_thread().name)
        return lloyd(*args, **kwargs)

    monkeypatch.setattr(km, "_lloyd", recording)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        side_by_side = kmeans(x, 40, seed=5, n_init=5)
        assert torch.get_num_threads() == 2  # the caller's setting is given back
    finally:
        torch.set_num_threads(threads)
    assert len(workers) == 2 and all(name.startswith("side-by-side") for name in workers)
    assert np.array_equal(alone.labels, side_by_side.labels) and alone.start == side_by_side.start
    assert side_by_side.inertias == pytest.approx(alone.inertias, rel=1e-6) and len(set(alone.inertias)) > 1


def word_vector_like(seed: int, n: int = 4000, dim: int = 48) -> np.ndarray:
    """Like contextual word vectors: many latent senses of uneven frequency (Zipf), each a
    cloud around its centre, plus a shared offset: clusters that touch, as on PUD."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n // 8, dim))
    senses = np.minimum(rng.zipf(1.3, size=n), len(centres)) - 1
    return (3.0 + centres[senses] + 0.7 * rng.normal(size=(n, dim))).astype(np.float32)


def _measured_rows(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record how many rows each Lloyd assignment measures against every centroid."""
    counts: list[int] = []
    measure = km._Bounds._measure

    def counting(self, points, sq_norms, centroids, rows, margin):
        counts.append(len(rows))
        return measure(self, points, sq_norms, centroids, rows, margin)

    monkeypatch.setattr(km._Bounds, "_measure", counting)
    return counts


@pytest.mark.parametrize("data, k", [(planted()[0], 12), (word_vector_like(0), 200), (word_vector_like(1), 60)])
def test_bounded_lloyd_gives_plain_lloyds_labels_and_skips_rows(data, k, monkeypatch: pytest.MonkeyPatch) -> None:
    measured = _measured_rows(monkeypatch)
    bounded = kmeans(data, k, seed=2, n_init=2)
    rows_bounded, measured[:] = sum(measured), []
    monkeypatch.setattr(km, "_BOUNDED", False)
    plain = kmeans(data, k, seed=2, n_init=2)
    assert np.array_equal(bounded.labels, plain.labels) and np.array_equal(bounded.centroids, plain.centroids)
    assert bounded.inertias == plain.inertias and bounded.n_iter == plain.n_iter
    assert sum(measured) == len(data) * len(measured)  # plain Lloyd measures every row every time
    if k > 12:  # planted blobs converge in two iterations: nothing to skip
        assert rows_bounded < 0.75 * sum(measured)


def test_bounds_hold_against_brute_force_distances(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    x = torch.as_tensor(word_vector_like(3, n=1500, dim=16))
    sq_norms = (x * x).sum(1)
    centroids = x[:40].clone()
    bounds = km._Bounds(x, sq_norms, centroids)
    measured = _measured_rows(monkeypatch)
    rng = torch.Generator().manual_seed(0)
    for _ in range(5):
        moved = centroids + 0.02 * torch.randn(centroids.shape, generator=rng)
        bounds.move((moved - centroids).norm(dim=1))
        centroids = moved
        true = torch.cdist(x.double(), centroids.double())
        assert bool((bounds.upper >= true[torch.arange(len(x)), bounds.labels] - 1e-9).all())
        assert bool((bounds.lower[:, :-1] <= true.gather(1, bounds.tracked) + 1e-9).all())
        untracked = true.scatter(1, bounds.tracked, float("inf")).min(1).values
        assert bool((bounds.lower[:, -1] <= untracked + 1e-9).all())
        bounds.assign(x, sq_norms, centroids)
        assert torch.equal(bounds.labels, torch.min(km._sq_distances(x, sq_norms, centroids), 1).indices)
    assert 0 < sum(measured) < 0.5 * 5 * len(x)  # the labels above were partly kept by the bounds alone


def test_start_seeds_follow_sklearn_and_do_not_depend_on_n_init() -> None:
    seeds = km.start_seeds(5, 10)
    assert seeds == np.random.RandomState(5).randint(np.iinfo(np.int32).max, size=10).tolist()
    assert km.start_seeds(5, 1) == seeds[:1] and len(set(seeds)) == 10


def test_explicit_init_is_one_start() -> None:
    x, _ = planted()
    result = kmeans(x, 12, init=x[::40], n_init=10)
    assert len(result.inertias) == 1 and result.start == 0


def test_device_parameter_runs_on_cpu() -> None:
    import torch

    x = random_data(3)
    on_cpu = kmeans(x, 10, seed=2, n_init=3, device="cpu")
    assert np.array_equal(on_cpu.labels, kmeans(x, 10, seed=2, n_init=3, device=torch.device("cpu")).labels)
    assert on_cpu.inertia == kmeans(x, 10, seed=2, n_init=3).inertia


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="no CUDA device")
def test_cuda_recovers_planted_clusters() -> None:
    x, truth = planted()
    result = kmeans(x, 12, seed=1, device="cuda")
    assert adjusted_rand_score(truth, result.labels) == 1.0


def test_choose_k_keeps_or_shrinks_with_a_warning() -> None:
    assert choose_k(6000, 600) == (600, None)
    k, warning = choose_k(5791, 600)
    assert k == 579 and "579" in warning and "600" in warning
    assert choose_k(20, 600)[0] == 2
    with pytest.raises(UserError):
        choose_k(19, 600)


def test_distances_with_the_factor_in_the_small_operand_are_the_expansion_bit_for_bit() -> None:
    """-2 folded into the centroids (an exact power-of-two scaling) changes no distance: the block is
    the plain expansion ``|x|^2 - 2 x.c + |c|^2`` computed over the product, bit for bit."""
    import torch

    generator = torch.Generator().manual_seed(0)
    rows, others = torch.randn(2000, 384, generator=generator) * 3, torch.randn(300, 384, generator=generator)
    norms = (rows * rows).sum(1)
    plain = torch.mm(rows, others.T).mul_(-2.0).add_(norms[:, None]).add_((others * others).sum(1)[None, :]).clamp_(min=0.0)
    assert torch.equal(km._sq_distances(rows, norms, others), plain)


def test_kmeans_plusplus_from_the_gram_rows_equals_it_from_products_per_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """Candidates are points, so their products with every point are rows of the Gram matrix: read
    from it (computed once, in blocks of rows), the seeding and the whole clustering are those of a
    product per step, bit for bit; above ``_GRAM_FLOATS`` no Gram matrix is made. Small integer
    coordinates make every product and sum exact, so this holds whatever order a CPU's BLAS sums in
    (on the default run's own vectors it holds too: ``benchmarks/bench_kmeans.py -k gram``)."""
    import torch

    rng = np.random.default_rng(3)
    truth = np.repeat(np.arange(30), 45)  # 1,350 points in 30 overlapping blobs: no easy split
    x = (rng.integers(-2, 3, size=(30, 48))[truth] + rng.integers(-3, 4, size=(len(truth), 48))).astype(np.float32)
    points = torch.from_numpy(x)
    sq_norms = (points * points).sum(1)
    monkeypatch.setattr(km, "_GRAM_ROWS", 100)  # 14 blocks, the last one short
    gram = km._gram(points)
    assert torch.equal(gram, torch.mm(points, points.T.mul(-2.0)))
    assert km._gram_pays(len(x), 30, 10) and not km._gram_pays(len(x), 3, 10)  # K = 3: 60 candidate rows in all

    def seeded(gram: torch.Tensor | None) -> torch.Tensor:
        generators = [torch.Generator().manual_seed(s) for s in km.start_seeds(5, 4)]
        return km.kmeans_plusplus(points, 30, generators, sq_norms, gram)

    assert torch.equal(seeded(gram), seeded(None))
    made: list[int] = []
    monkeypatch.setattr(km, "_gram", lambda p: made.append(len(p)) or gram)
    with_gram = kmeans(x, 30, seed=5)
    monkeypatch.setattr(km, "_GRAM_FLOATS", len(x) ** 2 - 1)
    per_step = kmeans(x, 30, seed=5)
    assert made == [len(x)]  # the second run made none
    assert np.array_equal(with_gram.labels, per_step.labels) and np.array_equal(with_gram.centroids, per_step.centroids)
    assert with_gram.inertias == per_step.inertias and len(set(per_step.inertias)) > 1
