"""Tokens per word, and the growth the spaced reading brings, with a planted tokenizer.

The tokenizer's pieces are single characters and a lone ``▁``, so every count is known by hand:
"我们喜欢猫。" reads ▁ 我 们 喜 欢 猫 。 (7 subwords for 4 words: 1.75 a word); the words joined by
spaces, "我们 喜欢 猫 。", read ▁ 我 们 ▁ 喜 欢 ▁ 猫 ▁ 。 (10 subwords: growth 10/7 - 1 = 3/7).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.test_word_vectors import TinySource
from tests.tiny_models import encoder_model, save_model, sentencepiece_tokenizer
from xlingbench.inputs.cache import Cache
from xlingbench.inputs.representations import Representations
from xlingbench.tasks.latent_concepts import extraction_metrics

PIECES = ["▁", "我", "们", "喜", "欢", "猫", "。"]
TEXTS = ["我们喜欢猫。", "猫喜欢我们"]
SPANS = [[(0, 2), (2, 4), (4, 5), (5, 6)], [(0, 1), (1, 3), (3, 5)]]
WORDS = [[text[a:b] for a, b in spans] for text, spans in zip(TEXTS, SPANS)]
#: raw: 7 + 6 subwords; spaced: 10 + 8 (a ▁ before each word); 7 words
RAW_TOKENS, SPACED_TOKENS, WORD_COUNT = 13, 18, 7


@pytest.fixture(scope="module")
def chars(tmp_path_factory: pytest.TempPathFactory) -> TinySource:
    embeddings = np.random.default_rng(0).normal(size=(4 + len(PIECES), 16)).astype(np.float32)
    folder = save_model(tmp_path_factory.mktemp("chars"), sentencepiece_tokenizer(PIECES), encoder_model(embeddings))
    return TinySource(folder, "encoder")


def test_the_planted_tokenizer_reads_as_planned(chars: TinySource) -> None:
    tokenizer = chars.load_tokenizer()
    assert tokenizer.tokenize(TEXTS[0]) == ["▁", "我", "们", "喜", "欢", "猫", "。"]
    assert tokenizer.tokenize(" ".join(WORDS[0])) == ["▁", "我", "们", "▁", "喜", "欢", "▁", "猫", "▁", "。"]


def test_raw_text_logs_tokens_per_word_and_the_spaced_growth(chars: TinySource, tmp_path: Path) -> None:
    reps = Representations(chars, Cache(tmp_path), device="cpu")
    vectors = reps.extract_vectors(WORDS, texts=TEXTS, spans=SPANS, language="zh")
    assert (vectors.info["tokens"], vectors.info["spaced_tokens"], vectors.info["words_given"]) == (RAW_TOKENS, SPACED_TOKENS, WORD_COUNT)
    metrics = extraction_metrics({"zh": vectors}, {"zh": 2})
    assert metrics["tokens_per_word/zh"] == pytest.approx(13 / 7)
    assert metrics["spaced_token_growth/zh"] == pytest.approx(18 / 13 - 1)


def test_spaced_text_logs_its_tokens_per_word_and_no_growth(chars: TinySource, tmp_path: Path) -> None:
    reps = Representations(chars, Cache(tmp_path), device="cpu")
    vectors = reps.extract_vectors(WORDS, language="zh")  # no text: the words joined by spaces (a .tok file)
    assert vectors.info["tokens"] == SPACED_TOKENS and "spaced_tokens" not in vectors.info
    metrics = extraction_metrics({"zh": vectors}, {"zh": 2})
    assert metrics["tokens_per_word/zh"] == pytest.approx(18 / 7)
    assert "spaced_token_growth/zh" not in metrics
