"""The batched torch logistic regression reaches scikit-learn's LogisticRegression() optimum."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from xlingbench.compute.logreg import TOLERANCE, Block, centred_block, fit_logistic, intercept_rows, scaled_block

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def planted_blocks(seed: int = 0) -> list[Block]:
    """Three blocks of different sizes, offset from the origin, overlapping classes, four problems each."""
    rng = np.random.default_rng(seed)
    blocks = []
    for n, offset in ((700, 2.0), (300, -1.0), (450, 0.5)):
        rows = (rng.normal(size=(n, 12)) + offset).astype(np.float32)
        targets = rows[:, 0] - offset + 0.7 * rng.normal(size=n) > 0
        blocks.append(Block(rows, targets, rng.random((n, 4)) < 0.8))
    separable = np.r_[np.zeros(200, bool), np.ones(200, bool)]  # a perfectly separable block: still a finite optimum
    rows = rng.normal(size=(400, 12)).astype(np.float32) + 3.0 * separable[:, None]
    return blocks + [Block(rows, separable, rng.random((400, 4)) < 0.8)]


def objective(rows: np.ndarray, targets: np.ndarray, coef: np.ndarray, intercept: float) -> float:
    """sum of log-losses + 0.5 |w|^2, sklearn's objective times the number of rows."""
    margins = rows.astype(np.float64) @ coef + intercept
    return float(np.logaddexp(0, -np.where(targets, 1, -1) * margins).sum() + 0.5 * coef @ coef)


@pytest.mark.parametrize("device", DEVICES)
def test_coefficients_equal_a_tightly_converged_sklearn(device: str) -> None:
    blocks = planted_blocks()
    fit = fit_logistic(blocks, tol=1e-10, device=device)
    assert fit.converged.all() and fit.iterations < 30
    for k, block in enumerate(blocks):
        for j in range(block.train.shape[1]):
            rows, targets = block.rows[block.train[:, j]], block.targets[block.train[:, j]]
            exact = LogisticRegression(solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(rows.astype(np.float64), targets)
            np.testing.assert_allclose(fit.coef[k, j], exact.coef_[0], atol=1e-7)
            assert fit.intercept[k, j] == pytest.approx(exact.intercept_[0], abs=1e-7)


@pytest.mark.parametrize(("tol", "margin_error"), [(TOLERANCE, 1e-5), (1e-10, 1e-9)])
def test_objective_is_sklearn_defaults_optimum_and_margins_match_the_coefficients(tol: float, margin_error: float) -> None:
    """At the default tolerance passes run in float32: margins carry its rounding, the optimum stays put."""
    blocks = planted_blocks(seed=1)
    fit = fit_logistic(blocks, tol=tol)
    for k, block in enumerate(blocks):
        np.testing.assert_allclose(fit.margins[k], block.rows.astype(np.float64) @ fit.coef[k].T + fit.intercept[k],
                                   atol=margin_error)
        for j in range(block.train.shape[1]):
            rows, targets = block.rows[block.train[:, j]], block.targets[block.train[:, j]]
            default = LogisticRegression().fit(rows, targets)
            ours = objective(rows, targets, fit.coef[k, j], fit.intercept[k, j])
            theirs = objective(rows, targets, default.coef_[0], default.intercept_[0])
            assert ours <= theirs + 1e-9 and ours == pytest.approx(theirs, rel=1e-3)  # lbfgs stops at a loose tol
            predicted = fit.margins[k][:, j] > 0
            assert np.mean(predicted == default.predict(block.rows)) >= 0.99


def test_iteration_limit_is_reported_as_unconverged() -> None:
    fit = fit_logistic(planted_blocks(), max_iter=1)
    assert fit.iterations == 1 and not fit.converged.any()


def test_blocks_must_share_width_and_problem_count() -> None:
    blocks = planted_blocks()
    narrow = Block(blocks[0].rows[:, :5], blocks[0].targets, blocks[0].train)
    with pytest.raises(ValueError, match="agree"):
        fit_logistic([blocks[1], narrow])
    with pytest.raises(ValueError, match="no blocks"):
        fit_logistic([])


def test_a_cpu_fit_leaves_torch_thread_count_as_it_found_it() -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        fit_logistic(planted_blocks())
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_refitting_gives_the_same_numbers() -> None:
    first, second = fit_logistic(planted_blocks()), fit_logistic(planted_blocks())
    assert np.array_equal(first.coef, second.coef) and np.array_equal(first.intercept, second.intercept)


def test_blocks_fitted_together_or_apart_give_the_same_numbers() -> None:
    """The problems are independent, so task 1 may fit its categories in groups (for memory) without
    changing a number: each block alone gives bit-identical coefficients and margins."""
    blocks = planted_blocks()
    together = fit_logistic(blocks)
    for b, block in enumerate(blocks):
        alone = fit_logistic([block])
        np.testing.assert_array_equal(alone.coef[0], together.coef[b])
        np.testing.assert_array_equal(alone.margins[0], together.margins[b])


def test_a_block_centred_in_place_fits_as_one_centred_by_the_solver() -> None:
    """:func:`centred_block` (one float32 copy of the rows) gives the numbers of a plain block."""
    plain = planted_blocks()[0]
    buffer = intercept_rows(len(plain.rows), plain.rows.shape[1])
    buffer[:, :-1] = plain.rows
    prepared = centred_block(buffer, plain.targets, plain.train)
    assert prepared.dim == plain.dim == plain.rows.shape[1]
    ours, theirs = fit_logistic([prepared]), fit_logistic([plain])
    np.testing.assert_array_equal(ours.coef, theirs.coef)
    np.testing.assert_array_equal(ours.intercept, theirs.intercept)
    np.testing.assert_array_equal(ours.margins[0], theirs.margins[0])


@pytest.mark.parametrize("tol", [TOLERANCE, 1e-10])
def test_fits_side_by_side_give_the_numbers_of_one_fit(tol: float) -> None:
    """With torch threads to spare the blocks are shared out among fits running at once, one thread
    each: every number is bit-identical to the one-thread fit, whatever the share-out, and the
    caller's thread count is left as it was."""
    blocks = planted_blocks(seed=2)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        alone = fit_logistic(blocks, tol=tol)
        for threads in (2, 3, 4):
            torch.set_num_threads(threads)
            apart = fit_logistic(blocks, tol=tol)
            assert torch.get_num_threads() == threads
            np.testing.assert_array_equal(apart.coef, alone.coef)
            np.testing.assert_array_equal(apart.intercept, alone.intercept)
            np.testing.assert_array_equal(apart.converged, alone.converged)
            assert apart.iterations == alone.iterations
            for ours, theirs in zip(apart.margins, alone.margins, strict=True):
                np.testing.assert_array_equal(ours, theirs)
    finally:
        torch.set_num_threads(before)


def test_blocks_that_disagree_are_refused_before_they_are_shared_out() -> None:
    """The width check sees every block, not each share: two threads would put these in two shares."""
    wide, narrow = planted_blocks()[0], planted_blocks()[1]
    narrow = Block(narrow.rows[:, :5], narrow.targets, narrow.train)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with pytest.raises(ValueError, match="agree on width"):
            fit_logistic([wide, narrow])
    finally:
        torch.set_num_threads(before)


def scaled_and_unit(seed: int = 4, n: int = 333, dim: int = 12) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """bfloat16 rows off the origin, their clamped norms, and the float32 unit rows they stand for."""
    from xlingbench.compute.rows import unit_norms, unit_rows

    raw = (torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)) * 3 + 1).to(torch.bfloat16)
    everything = np.arange(n)
    return raw, unit_norms(raw, everything), unit_rows(raw, everything)


def test_scaled_rows_pass_over_the_unit_rows_they_stand_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """:class:`ScaledRows` normalise and centre chunk by chunk (7 rows of 13 floats here: 47 chunks and a
    remainder): each chunk holds exactly the float32 unit rows minus the mean, and the products equal dense ones."""
    from xlingbench.compute import logreg

    monkeypatch.setattr(logreg, "PASS_BYTES", 7 * 13 * 4 + 3)
    raw, norms, unit = scaled_and_unit()
    block = logreg.scaled_block(raw, norms, np.zeros(len(raw), bool), np.ones((len(raw), 3), bool))
    np.testing.assert_allclose(block.mean, unit.astype(np.float64).mean(0), rtol=0, atol=1e-7)
    dense = np.hstack([unit - block.mean, np.ones((len(unit), 1), np.float32)])
    chunks = [(rows, chunk.clone()) for rows, chunk in block.rows.chunks()]
    assert len(chunks) == 48 and np.array_equal(np.vstack([c.numpy() for _, c in chunks]), dense)
    vectors, residuals = torch.randn(3, 13), torch.randn(len(raw), 3)
    np.testing.assert_allclose(block.rows.times(vectors).numpy(), dense @ vectors.numpy().T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(block.rows.transpose_times(residuals).numpy(), residuals.numpy().T.astype(np.float64) @ dense,
                               rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("tol", "agree"), [(TOLERANCE, 1e-4), (1e-10, 1e-8)])
def test_scaled_rows_reach_the_optimum_of_their_float32_block(tol: float, agree: float, device: str) -> None:
    """A bfloat16 block normalised as the fit reads it (one copy in its own dtype) and the float32 block
    of its unit rows have the same optimum: the two fits differ only in rounding (the mean's sum, chunked
    reductions), within what ``tol`` certifies; with planted overlapping classes the signs agree."""
    raw, norms, unit = scaled_and_unit(seed=9, n=800)
    rng = np.random.default_rng(9)
    targets = unit[:, 0] + 0.3 * rng.normal(size=len(unit)) > unit[:, 0].mean()
    train = rng.random((len(unit), 5)) < 0.8
    buffer = intercept_rows(len(unit), unit.shape[1])
    buffer[:, :-1] = unit
    scaled = fit_logistic([scaled_block(raw, norms, targets, train)], tol=tol, device=device)
    dense = fit_logistic([centred_block(buffer, targets, train)], tol=tol, device=device)
    assert scaled.converged.all() and dense.converged.all()
    np.testing.assert_allclose(scaled.coef, dense.coef, rtol=0, atol=agree * np.abs(dense.coef).max())
    np.testing.assert_allclose(scaled.intercept, dense.intercept, rtol=0, atol=agree * np.abs(dense.coef).max())
    assert np.array_equal(scaled.margins[0] > 0, dense.margins[0] > 0)
