"""The same command from two empty caches gives the same numbers: the property a CI gate and a
checkpoint comparison stand on. Tasks 4-5 are the ones with randomness (the aligner, K-means
starts, occurrence caps), so they are run twice on a tiny model, each time from an empty cache."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import xlingbench
from tests.tiny_models import encoder_model, save_model, sentencepiece_tokenizer

WORDS = {"en": [f"w{i}" for i in range(40)], "de": [f"v{i}" for i in range(40)]}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny XLM-R whose vocabulary holds every word of a small word-for-word parallel corpus."""
    root = tmp_path_factory.mktemp("determinism")
    pieces = ["\u2581" + w for lang in ("en", "de") for w in WORDS[lang]]
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(len(pieces) + 4, 16)).astype(np.float32)
    model = save_model(root / "model", sentencepiece_tokenizer(pieces), encoder_model(matrix, layers=2))
    lines = [[WORDS["en"][i] for i in rng.permutation(40)[:8]] for _ in range(120)]
    (root / "c.en.tok").write_text("".join(" ".join(line) + "\n" for line in lines))
    (root / "c.de.tok").write_text("".join(" ".join(w.replace("w", "v") for w in line) + "\n" for line in lines))
    return model, root / "c"


def _scores(model: Path, data: Path, cache: Path) -> dict[str, object]:
    params = {"calign": {"data": str(data), "k": 6, "n_init": 3}, "colap": {"data": str(data), "k": 6, "n_init": 3}}
    outcomes = xlingbench.evaluate([str(model)], ["calign", "colap"], params=params, cache_dir=cache)
    return {o.task.name: (o.result.metrics, o.result.step_metrics, o.fingerprint) for o in outcomes}


def test_tasks_4_and_5_are_identical_from_two_empty_caches(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    model, data = tiny
    first = _scores(model, data, tmp_path / "cache-a")
    second = _scores(model, data, tmp_path / "cache-b")
    assert first == second
    metrics, curve, _ = first["calign"]
    assert len(curve["calign"]) == 3 and metrics["dictionary_coverage"] > 0.5  # layers 0..2, a word-for-word corpus
