"""Task 1: planted script clusters separate, shuffled labels do not, and the numbers are sklearn's (both solvers)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score

from xlingbench.compute.separability import separability, stratified_folds, undersample
from xlingbench.core.errors import UserError
from xlingbench.core.params import build
from xlingbench.tasks import script_separability as task
from tests.tiny_models import fake_inputs


def spelled(i: int, first: str, size: int) -> str:
    """``i`` written in ``size`` consecutive letters from ``first`` (a distinct word per i)."""
    out = ""
    while True:
        out, i = chr(ord(first) + i % size) + out, i // size
        if i == 0:
            return out


def planted(sizes: dict[str, int], dim: int = 16, spread: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit rows around one random centre per category, and their labels."""
    rng = np.random.default_rng(seed)
    labels = np.array([c for c, n in sizes.items() for _ in range(n)], dtype=object)
    centres = {c: rng.normal(size=dim) for c in sizes}
    rows = np.stack([centres[c] for c in labels]) + spread * rng.normal(size=(len(labels), dim))
    rows = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return rows.astype(np.float32), labels


def imblearn_style_sample(y: np.ndarray, seed: int) -> np.ndarray:
    """RandomUnderSampler(random_state=seed)._fit_resample, transcribed for a binary y."""
    classes, counts = np.unique(y, return_counts=True)
    minority = classes[np.argmin(counts)]
    random_state = np.random.RandomState(seed)
    picked = []
    for cls in classes:
        members = np.flatnonzero(y == cls)
        if cls != minority:
            members = members[random_state.choice(range(len(members)), size=counts.min(), replace=False)]
        picked.append(members)
    return np.concatenate(picked)


def test_planted_clusters_separate_perfectly() -> None:
    unit, labels = planted({"LATIN": 900, "CYRILLIC": 600, "CJK": 550, "S": 120})
    found = separability(unit, labels, seed=150, min_tokens=500, folds=10)
    assert [s.category for s in found.scores] == ["LATIN", "CYRILLIC", "CJK"]
    assert found.too_small == {"S": 120}
    assert found.accuracy > 0.99
    assert [s.tokens for s in found.scores] == [900, 600, 550]


def test_shuffled_labels_give_chance() -> None:
    # Rows without cluster structure: with clusters, shuffled labels score well *below* 0.5,
    # because chance label imbalances within a cluster reverse between train and test folds.
    _, labels = planted({"LATIN": 900, "CYRILLIC": 600, "CJK": 550})
    unit = np.random.default_rng(2).normal(size=(len(labels), 16)).astype(np.float32)
    shuffled = labels[np.random.default_rng(1).permutation(len(labels))]
    found = separability(unit, shuffled, seed=150, min_tokens=500)
    assert 0.4 < found.accuracy < 0.6


def test_matches_a_direct_sklearn_computation_exactly() -> None:
    unit, labels = planted({"LATIN": 700, "CYRILLIC": 520, "CJK": 510}, spread=1.5)
    found = separability(unit, labels, seed=7, min_tokens=500, folds=10, solver="sklearn")
    for score in found.scores:
        y = (labels == score.category).astype(int)
        rows = imblearn_style_sample(y, seed=7)
        expected = cross_val_score(LogisticRegression(), unit[rows], y[rows], cv=10)
        np.testing.assert_array_equal(score.fold_scores, expected)
    assert found.accuracy < 0.99  # overlapping clusters: the comparison is not trivially all ones


def test_torch_solver_accuracies_agree_with_sklearn() -> None:
    unit, labels = planted({"LATIN": 900, "CYRILLIC": 620, "CJK": 560}, spread=1.5, seed=3)
    fast = separability(unit, labels, seed=7, min_tokens=500, folds=10)
    published = separability(unit, labels, seed=7, min_tokens=500, folds=10, solver="sklearn")
    assert [s.category for s in fast.scores] == [s.category for s in published.scores]
    for ours, theirs in zip(fast.scores, published.scores):
        assert abs(ours.accuracy - theirs.accuracy) <= 0.002, ours.category
    assert fast.unconverged == {"LATIN": 0, "CYRILLIC": 0, "CJK": 0}
    assert 0.6 < fast.accuracy < 0.99  # overlapping clusters: the agreement is not trivially all ones


@pytest.mark.parametrize("folds", [2, 3, 5, 10])
def test_folds_are_sklearns_stratified_folds(folds: int) -> None:
    """Every row's test fold as StratifiedKFold(folds) puts it, for balanced, skewed, multi-class and
    unsorted targets (the class seen first is class 0 whatever its value)."""
    rng = np.random.default_rng(folds)
    cases = [np.repeat([False, True], 37), rng.random(101) < 0.2, rng.integers(0, 4, 203), np.array([3] * 12 + [1] * 25)]
    for targets in cases:
        expected = np.empty(len(targets), dtype=np.int64)
        for f, (_, test) in enumerate(StratifiedKFold(folds).split(np.zeros(len(targets)), targets)):
            expected[test] = f
        assert stratified_folds(targets, folds).tolist() == expected.tolist()


def test_more_folds_than_rows_of_every_class_is_refused() -> None:
    with pytest.raises(ValueError, match="folds=5"):
        stratified_folds(np.array([0, 0, 1, 1, 1]), 5)


def test_unknown_solver_is_refused() -> None:
    unit, labels = planted({"A": 520, "B": 520})
    with pytest.raises(ValueError, match="solver 'newton'"):
        separability(unit, labels, solver="newton")


def test_seed_decides_the_sample_deterministically() -> None:
    unit, labels = planted({"A": 700, "B": 520}, spread=2.0)
    first = separability(unit, labels, seed=3, min_tokens=500)
    again = separability(unit, labels, seed=3, min_tokens=500)
    other = separability(unit, labels, seed=4, min_tokens=500)
    assert first.accuracy == again.accuracy
    assert first.accuracy != other.accuracy


def test_undersampling_with_equal_sides_draws_the_category() -> None:
    is_category = np.array([False, True] * 4)
    rows = undersample(is_category, seed=150)
    expected = np.concatenate([[0, 2, 4, 6], np.array([1, 3, 5, 7])[np.random.RandomState(150).permutation(4)]])
    np.testing.assert_array_equal(rows, expected)


def test_unlabelled_rows_are_left_out() -> None:
    unit, labels = planted({"A": 520, "B": 520})
    with_none = labels.copy()
    with_none[:10] = None
    found = separability(unit, with_none, min_tokens=500)
    assert [s.tokens for s in found.scores] == [520, 510]


def test_a_bfloat16_matrix_scores_as_its_float32_rows_and_ids_as_the_sub_matrix() -> None:
    """The matrix may come in the model's own dtype (a torch bfloat16 tensor): rows are converted as
    they are gathered, so the scores are those of the same values in float32; ``ids`` score rows in
    place, as the sub-matrix would score."""
    import torch

    unit, labels = planted({"A": 600, "B": 560, "C": 40}, spread=1.2, seed=5)
    scaled = torch.from_numpy(unit * 4.0).to(torch.bfloat16)
    as_float32 = scaled.float().numpy()
    first = separability(scaled, labels, seed=3, min_tokens=500)
    assert [(s.category, s.fold_scores.tolist()) for s in first.scores] == \
        [(s.category, s.fold_scores.tolist()) for s in separability(as_float32, labels, seed=3, min_tokens=500).scores]
    assert 0.6 < first.accuracy < 0.99  # overlapping clusters: the equality is not trivially all ones
    ids = np.flatnonzero(labels != "C")[::-1]
    by_ids = separability(as_float32, labels[ids], ids=ids, seed=3, min_tokens=500)
    sub = separability(as_float32[ids], labels[ids], seed=3, min_tokens=500)
    assert [s.fold_scores.tolist() for s in by_ids.scores] == [s.fold_scores.tolist() for s in sub.scores]


def scripted_vocabulary() -> tuple[list[str], np.ndarray]:
    """600 Latin, 600 Cyrillic and 600 Han tokens, embedded in three planted clusters."""
    tokens = ["<pad>"] + [f"▁{spelled(i, 'a', 26)}" for i in range(600)] + [spelled(i, "а", 32) for i in range(600)]
    tokens += [chr(0x4E00 + i) for i in range(600)]
    unit, _ = planted({"pad": 1, "LATIN": 600, "CYRILLIC": 600, "CJK": 600})
    return tokens, unit * 3.0  # the task must normalise rows itself


def test_adapter_reports_every_category(tmp_path: Path) -> None:
    tokens, matrix = scripted_vocabulary()
    inputs = fake_inputs(tokens, matrix, tmp_path, special_ids=[0])
    result = task.TASK.run(inputs, task.Params(labels="script"))
    assert result.metrics["accuracy"] > 0.99
    assert {"accuracy/Latin", "accuracy/Cyrillic", "accuracy/Han", "tokens/Han"} <= set(result.metrics)
    assert result.metrics["tokens/Latin"] == 600
    assert result.params == {"labels": "script", "seed": 150, "min_tokens": 500, "folds": 10, "tokens": "",
                             "solver": "torch"}
    assert result.info["labels"] == "script" and "unidata_version" in result.info
    assert result.info["solver"].startswith("torch:") and result.info["unconverged_fits"] == 0
    low, high = result.intervals["accuracy"]
    assert low <= result.metrics["accuracy"] <= high
    assert [row["category"] for row in result.tables["categories"]] == [k.split("/", 1)[1] for k in result.metrics if k.startswith("accuracy/")]


def test_adapter_restricts_to_a_token_list(tmp_path: Path) -> None:
    tokens, matrix = scripted_vocabulary()
    listed = tmp_path / "tokens.txt"
    listed.write_text("\n".join(tokens[1:1101]) + "\n", encoding="utf-8")  # all Latin, 500 Cyrillic
    result = task.TASK.run(fake_inputs(tokens, matrix, tmp_path), task.Params(tokens=str(listed)))
    assert result.metrics["tokens/LATIN"] == 600 - 26  # '▁a'..'▁z' are S under the paper rule
    assert result.metrics["tokens/CYRILLIC"] == 500
    assert result.info["tokens_scored"] == 1100


def test_sklearn_solver_is_recorded_and_an_unknown_one_is_a_user_error(tmp_path: Path) -> None:
    tokens, matrix = scripted_vocabulary()
    result = task.TASK.run(fake_inputs(tokens, matrix, tmp_path), task.Params(solver="sklearn"))
    assert result.info["solver"].startswith("sklearn:") and result.params["solver"] == "sklearn"
    with pytest.raises(UserError, match="solver='lbfgs' is not one of torch, sklearn"):
        build("script_separability", task.Params, {"solver": "lbfgs"})


def test_missing_token_list_names_the_file(tmp_path: Path) -> None:
    tokens, matrix = scripted_vocabulary()
    with pytest.raises(UserError, match="nowhere.txt"):
        build("script_separability", task.Params, {"tokens": str(tmp_path / "nowhere.txt")})


def test_too_small_vocabulary_says_how_to_fix(tmp_path: Path) -> None:
    tokens, matrix = scripted_vocabulary()
    with pytest.raises(UserError, match="min_tokens"):
        task.TASK.run(fake_inputs(tokens, matrix, tmp_path), task.Params(min_tokens=10_000))


def test_the_torch_probe_does_not_import_scikit_learn() -> None:
    """scikit-learn's import keeps 65-80 MB resident for the rest of a run; the default solver needs none of it."""
    code = ("import sys, numpy as np; from xlingbench.compute.separability import separability; "
            "rows = np.random.default_rng(0).normal(size=(60, 4)).astype(np.float32); "
            "separability(rows, np.array(['A', 'B'] * 30, dtype=object), min_tokens=20, folds=3); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sklearn'))")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"
