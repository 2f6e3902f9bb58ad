"""Task 3: planted translations rank first, surface variants are skipped, identical pairs dropped."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xlingbench.core.errors import UserError
from xlingbench.core.params import build
from xlingbench.tasks import translation_in_neighbours as task
from tests.tiny_models import fake_inputs

TOKENS = ["<s>", "▁water", "▁Water", "water", "▁Wasser", "▁house", "Haus", "▁dog", "▁Hund", "▁taxi", "▁Taxi",
          "▁cat", "▁Katze"] + [f"▁noise{i}" for i in "abcdefghij"]
ENTRIES = {"water": ["Wasser"], "house": ["Haus"], "dog": ["Hund", "Köter"], "taxi": ["Taxi"], "zebra": ["Zebra"]}


def planted_matrix(dim: int = 24) -> np.ndarray:
    """Translations near their English word, surface variants nearer still, ``▁Katze`` opposite ``▁cat``."""
    rng = np.random.default_rng(0)
    centre = {w: rng.normal(size=dim) for w in ("water", "house", "dog", "taxi", "cat")}
    near = {"▁water": "water", "▁Water": "water", "water": "water", "▁Wasser": "water", "▁house": "house",
            "Haus": "house", "▁dog": "dog", "▁Hund": "dog", "▁taxi": "taxi", "▁Taxi": "taxi", "▁cat": "cat"}
    spread = {"▁Water": 0.01, "water": 0.01}
    rows = []
    for tok in TOKENS:
        if tok in near:
            rows.append(centre[near[tok]] + spread.get(tok, 0.1) * rng.normal(size=dim))
        elif tok == "▁Katze":
            rows.append(-centre["cat"])
        else:
            rows.append(rng.normal(size=dim))
    return np.array(rows, dtype=np.float32)


def unit(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def test_queries_take_single_tokens_either_form_and_drop_identical_pairs() -> None:
    found = task.build_queries(TOKENS, ENTRIES, frozenset({0}))
    assert found.words == ["water", "house", "dog"]  # taxi->Taxi is a copy; zebra is not a token
    assert [TOKENS[i] for i in found.query_ids] == ["▁water", "▁house", "▁dog"]
    assert [[TOKENS[i] for i in t] for t in found.targets] == [["▁Wasser"], ["Haus"], ["▁Hund"]]
    assert [sorted(TOKENS[i] for i in v) for v in found.variants][0] == ["water", "▁Water", "▁water"]
    assert found.translations[2] == ["Hund"]  # Köter is no single token


def test_a_word_that_is_only_a_mid_word_piece_is_no_query() -> None:
    tokens = ["america", "▁Amerika", "▁water", "▁Wasser", "▁dog", "dog", "▁Hund"]
    found = task.build_queries(tokens, {"america": ["Amerika"], "water": ["Wasser"], "dog": ["Hund"]})
    assert found.words == ["water", "dog"]  # `america` lacks ▁: a piece of other words, not the word
    assert [tokens[i] for i in found.query_ids] == ["▁water", "▁dog"]


def test_pairs_sharing_queries_rank_like_a_per_pair_loop() -> None:
    matrix = unit(np.random.default_rng(5).normal(size=(len(TOKENS), 8)).astype(np.float32))
    pairs = [task.build_queries(TOKENS, entries) for entries in (
        {"water": ["Wasser"], "house": ["Haus"], "dog": ["Hund"]},
        {"water": ["Haus", "Katze"], "dog": ["Katze", "Wasser"]},
        {"house": ["Hund"], "cat": ["Katze", "Haus"]})]
    assert [len(p.words) for p in pairs] == [3, 2, 2]
    for queries, got in zip(pairs, task.pair_best_ranks(matrix, pairs)):
        expected = []
        for q, targets, variants in zip(queries.query_ids, queries.targets, queries.variants):
            sims = matrix @ matrix[q]
            kept = np.ones(len(TOKENS), dtype=bool)
            kept[[q, *variants]] = False
            expected.append(1 + int((sims[kept] > sims[targets].max()).sum()))
        assert got.tolist() == expected


def test_lowercase_dictionaries_match_capitalised_tokens_only_on_request() -> None:
    lowercase = {"water": ["wasser"], "house": ["haus"], "dog": ["hund"]}
    assert task.build_queries(TOKENS, lowercase, frozenset({0})).words == []
    found = task.build_queries(TOKENS, lowercase, frozenset({0}), match_case=False)
    assert found.words == ["water", "house", "dog"]
    assert [[TOKENS[i] for i in t] for t in found.targets] == [["▁Wasser"], ["Haus"], ["▁Hund"]]


def test_planted_translations_rank_first_once_variants_are_skipped() -> None:
    found = task.build_queries(TOKENS, ENTRIES)
    np.testing.assert_array_equal(task.pair_best_ranks(unit(planted_matrix()), [found])[0], [1, 1, 1])


def test_without_skipping_variants_the_translation_would_not_be_first() -> None:
    found = task.build_queries(TOKENS, ENTRIES)
    found.variants = [np.array([q]) for q in found.query_ids]
    assert task.pair_best_ranks(unit(planted_matrix()), [found])[0][0] == 3  # ▁Water and water come first


def test_a_translation_opposite_the_query_ranks_last() -> None:
    found = task.build_queries(TOKENS, {"cat": ["Katze"]})
    # every other row except ▁cat itself is strictly more similar than the opposite vector
    assert task.pair_best_ranks(unit(planted_matrix()), [found])[0].tolist() == [len(TOKENS) - 1]


def write_dictionaries(folder: Path) -> Path:
    folder.mkdir()
    (folder / "en-de.tsv").write_text("water\tWasser\nhouse\tHaus\ndog\tHund\ntaxi\tTaxi\ncat\tKatze\n", encoding="utf-8")
    (folder / "en-fr.txt").write_text("water eau\nzebra zèbre\n", encoding="utf-8")
    return folder


def test_adapter_scores_each_pair(tmp_path: Path) -> None:
    folder = write_dictionaries(tmp_path / "dicts")
    inputs = fake_inputs(TOKENS, planted_matrix(), tmp_path / "cache", special_ids=[0])
    result = task.TASK.run(inputs, build("t3", task.Params, {"dictionary": str(folder), "ks": "1,5"}))
    m = result.metrics
    assert m["queries/en-de"] == 4
    assert m["hit_at_1/en-de"] == 0.75 and m["hit_at_10/en-de"] == 0.75  # cat -> Katze misses
    assert m["mean_rank/en-de"] == (1 + 1 + 1 + len(TOKENS) - 1) / 4
    assert m["hit_at_10"] == m["hit_at_10/en-de"]  # en-fr has no query: not averaged in
    assert result.info["pairs_without_queries"] == ["en-fr"]
    assert set(result.info["dictionaries"]) == {"en-de", "en-fr"}
    assert result.params["dictionary"] == str(folder)
    assert {k for k in result.metrics if k.startswith("hit_at_")} >= {"hit_at_1/en-de", "hit_at_5/en-de", "hit_at_10/en-de"}
    shown = {row["query"]: row for row in result.tables["examples"]}
    assert shown["▁water"]["neighbours"].split()[0] == "▁Wasser"
    assert "▁Water" not in shown["▁water"]["neighbours"].split()


def test_adapter_filters_pairs(tmp_path: Path) -> None:
    folder = write_dictionaries(tmp_path / "dicts")
    inputs = fake_inputs(TOKENS, planted_matrix(), tmp_path / "cache")
    with pytest.raises(UserError, match="no query of en-fr"):
        task.TASK.run(inputs, build("t3", task.Params, {"dictionary": str(folder), "pairs": "fr"}))


def test_adapter_default_cldr_dictionary(tmp_path: Path) -> None:
    tokens = ["▁German", "▁Deutsch", "▁January", "▁Januar", "▁Monday", "▁Montag", "▁the", "▁der"]
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(4, 16))
    matrix = np.stack([centres[i // 2] + 0.05 * rng.normal(size=16) for i in range(8)]).astype(np.float32)
    result = task.TASK.run(fake_inputs(tokens, matrix, tmp_path), build("t3", task.Params, {"pairs": "de"}))
    assert result.metrics["queries/en-de"] == 3
    assert result.metrics["hit_at_1"] == 1.0 and result.metrics["mean_rank"] == 1.0
    assert result.info["dictionaries"]["en-de"]["source"].startswith("cldr")


@pytest.mark.parametrize("ks", ["1,x", "0,10"])
def test_bad_ks_is_a_user_error(ks: str) -> None:
    with pytest.raises(UserError, match="ks="):
        build("translation_in_neighbours", task.Params, {"ks": ks})


def test_ks_always_hold_the_headline_k() -> None:
    assert task.hit_ks(build("t3", task.Params, {"ks": "50,1"}).ks) == [1, 10, 50]
    with pytest.raises(UserError, match="ks= must list positive integers"):  # an empty list is a mistake (issue 18)
        build("t3", task.Params, {"ks": ""})
