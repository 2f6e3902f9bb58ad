"""The sentence-identity control of CALIGN and COLAP (docs/tasks.md, "The sentence-identity
control"), end to end on tiny models through xlingbench.evaluate.

Planted: a word-for-word parallel corpus whose translation pairs share a concept. A tiny encoder
whose input embeddings put each concept's words (both languages) near one centre must score high
on the controlled headlines; the same architecture with random embeddings, and a random-weight
causal decoder, must score near zero, while the paper's COLAP scores all three alike. (That the
paper's CALIGN rewards sentence clusters is planted directly in tests/test_concepts.py.)"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import xlingbench
from tests.tiny_models import encoder_model, save_model, sentencepiece_tokenizer

N_CONCEPTS, TYPES, SENTENCES, LENGTH = 20, 8, 240, 8
WORDS = {lang: [f"{tag}{c}x{i}" for c in range(N_CONCEPTS) for i in range(TYPES)] for lang, tag in (("en", "e"), ("de", "g"))}
PIECES = ["\u2581" + w for lang in ("en", "de") for w in WORDS[lang]]
DIM = 32


def _decoder(seed: int):
    """A random-weight Llama-style causal LM (3 layers) over the same vocabulary."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(PIECES) + 4, hidden_size=DIM, intermediate_size=2 * DIM, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64,
                         bos_token_id=0, eos_token_id=2, pad_token_id=1)
    return LlamaForCausalLM(config)


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> tuple[dict[str, Path], Path]:
    """The three models and the corpus (``c.en.tok``, ``c.de.tok``)."""
    root = tmp_path_factory.mktemp("control")
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=4.0, size=(N_CONCEPTS, DIM))
    concept = np.array([c for _ in ("en", "de") for c in range(N_CONCEPTS) for _ in range(TYPES)])
    specials = rng.normal(size=(4, DIM))
    shared = np.vstack([specials, centres[concept] + 0.05 * rng.normal(size=(len(PIECES), DIM))]).astype(np.float32)
    noise = rng.normal(size=(len(PIECES) + 4, DIM)).astype(np.float32)
    tokenizer = sentencepiece_tokenizer(PIECES)
    models = {"planted-encoder": save_model(root / "planted", tokenizer, encoder_model(shared, layers=2)),
              "random-encoder": save_model(root / "random-encoder", tokenizer, encoder_model(noise, layers=2)),
              "random-decoder": save_model(root / "random-decoder", tokenizer, _decoder(0))}
    lines = [[int(i) for i in rng.integers(0, len(WORDS["en"]), size=LENGTH)] for _ in range(SENTENCES)]
    for lang in ("en", "de"):
        (root / f"c.{lang}.tok").write_text("".join(" ".join(WORDS[lang][i] for i in line) + "\n" for line in lines))
    return models, root / "c"


def _headlines(model: Path, data: Path, cache: Path) -> dict[str, dict[str, float]]:
    params = {"calign": {"data": str(data), "k": 16, "n_init": 3}, "colap": {"data": str(data), "k": 32, "n_init": 3}}
    outcomes = xlingbench.evaluate([str(model)], ["calign", "colap"], params=params, cache_dir=cache)
    return {o.task.name: {**o.result.metrics, "headline": o.headline} for o in outcomes}


def test_controlled_headline_is_high_for_planted_concepts_and_near_zero_for_random_weights(planted, tmp_path) -> None:
    models, data = planted
    scores = {name: _headlines(path, data, tmp_path / "cache") for name, path in models.items()}
    for task in ("calign", "colap"):
        assert scores["planted-encoder"][task]["headline"] == scores["planted-encoder"][task][f"{task}_controlled_max"]
        assert scores["planted-encoder"][task][f"{task}_controlled_max"] > 60
        for random_model in ("random-encoder", "random-decoder"):
            assert scores[random_model][task][f"{task}_controlled_max"] < 5, (random_model, task, scores[random_model][task])
    # the paper's COLAP cannot tell them apart: clusters that ignore language overlap everywhere
    assert min(scores[name]["colap"]["colap_max"] for name in models) > 50


@pytest.fixture(scope="module")
def inflected(tmp_path_factory) -> tuple[Path, Path]:
    """A planted cross-lingual encoder whose German writes every word in two forms (inflection),
    so German has twice the English word types and, with one K for both, concepts twice as large.
    Returns the model and the corpus (``c.en.tok``, ``c.de.tok``)."""
    root = tmp_path_factory.mktemp("inflected")
    rng = np.random.default_rng(1)
    english = WORDS["en"]
    german = [f"{w}{form}" for w in WORDS["de"] for form in "ab"]
    pieces = ["\u2581" + w for w in english + german]
    centres = rng.normal(scale=4.0, size=(N_CONCEPTS, DIM))
    concept = np.array([c for c in range(N_CONCEPTS) for _ in range(TYPES)] + [c for c in range(N_CONCEPTS) for _ in range(2 * TYPES)])
    rows = np.vstack([rng.normal(size=(4, DIM)), centres[concept] + 0.05 * rng.normal(size=(len(pieces), DIM))]).astype(np.float32)
    model = save_model(root / "planted", sentencepiece_tokenizer(pieces), encoder_model(rows, layers=2))
    lines = [[int(i) for i in rng.integers(0, len(english), size=LENGTH)] for _ in range(2 * SENTENCES)]
    (root / "c.en.tok").write_text("".join(" ".join(english[i] for i in line) + "\n" for line in lines))
    (root / "c.de.tok").write_text("".join(" ".join(german[2 * i + int(rng.integers(2))] for i in line) + "\n" for line in lines))
    return model, root / "c"


def test_controlled_calign_compares_sizes_per_language_so_an_inflected_target_still_aligns(inflected, tmp_path) -> None:
    """The paper's raw size test (8 English types against 16 German forms: 0.5 < 0.6) finds no
    aligned concept; the controlled test, in units of each language's mean concept size, finds them."""
    model, data = inflected
    params = {"calign": {"data": str(data), "k": 16, "n_init": 3}}
    metrics = xlingbench.evaluate([str(model)], ["calign"], params=params, cache_dir=tmp_path / "cache")[0].result.metrics
    assert metrics["calign_max"] < 10
    assert metrics["calign_controlled_max"] > 60
