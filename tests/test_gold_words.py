"""Gold words (.tok) located in the raw sentence (.txt): the model reads the text as written."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from xlingbench.inputs.cache import Cache
from xlingbench.inputs.gold_words import locate_words
from xlingbench.inputs.parallel_data import load_parallel
from xlingbench.inputs.representations import ExtractionSettings, Representations
from tests.tiny_models import byte_bpe_tokenizer

RAW_ZH = "雖然美國的許多數字化轉型都是史無前例的，但權力的和平轉移卻存在先例。"
GOLD_ZH = "雖然 美國 的 許多 數字化 轉型 都是 史無前例 的 ， 但 權力 的 和平 轉移 卻 存在 先例 。"


def test_words_are_found_in_order_with_only_whitespace_between() -> None:
    found = locate_words("“While much,” he said.", ["“", "While", "much", ",", "”", "he", "said", "."])
    assert found.lost == 0 and found.spans == [(0, 1), (1, 6), (7, 11), (11, 12), (12, 13), (14, 16), (17, 21), (21, 22)]
    zh = locate_words(RAW_ZH, GOLD_ZH.split())
    assert zh.lost == 0 and [RAW_ZH[a:b] for a, b in zh.spans] == GOLD_ZH.split()


def test_a_repeated_word_takes_the_next_occurrence_not_a_later_one() -> None:
    found = locate_words("的的 的", ["的", "的", "的"])
    assert found.spans == [(0, 1), (1, 2), (3, 4)]


def test_a_changed_word_is_lost_and_counted_without_losing_the_rest() -> None:
    # the .tok file wrote 600_000 for "600 000"; the words around it are still found
    found = locate_words("упал ниже 600 000 рублей.", ["упал", "ниже", "600_000", "рублей", "."])
    assert found.lost == 1 and found.words == ["упал", "ниже", "рублей", "."]
    assert found.spans[2] == (18, 24)


def test_a_word_far_ahead_is_not_taken_for_a_missing_one() -> None:
    found = locate_words("a cat sat on the very long mat and a hat", ["a", "dog", "and"])
    assert found.words == ["a"] and found.lost == 2  # "and" lies 29 characters on, past the room "dog" left


class _ByteDecoder:
    """A ModelSource of a tiny GPT-2 over a byte-level vocabulary (every byte one token), recording its inputs."""

    name = model_id = "tiny-byte-decoder"
    revision, arch = "0" * 40, "decoder"

    def __init__(self) -> None:
        from tokenizers import pre_tokenizers
        from transformers import GPT2Config, GPT2Model

        self.tokenizer = byte_bpe_tokenizer(sorted(pre_tokenizers.ByteLevel.alphabet()))
        torch.manual_seed(0)
        self.model = GPT2Model(GPT2Config(vocab_size=len(self.tokenizer), n_embd=16, n_layer=2, n_head=2, n_positions=256))
        self.seen: list[list[int]] = []
        self.model.register_forward_pre_hook(lambda m, a, k: self.seen.extend(k["input_ids"].tolist()), with_kwargs=True)

    def load_tokenizer(self) -> Any:
        return self.tokenizer

    def load_model(self) -> Any:
        return self.model

    def load_embedding_matrix(self) -> np.ndarray:
        return self.model.get_input_embeddings().weight.detach().numpy()


def test_a_cjk_sentence_is_read_raw_and_each_gold_word_gets_its_own_last_piece(tmp_path: Path) -> None:
    (tmp_path / "c.zh.txt").write_text(RAW_ZH + "\n", encoding="utf-8")
    (tmp_path / "c.zh.tok").write_text(GOLD_ZH + "\n", encoding="utf-8")
    (tmp_path / "c.en.tok").write_text("Although many .\n", encoding="utf-8")
    corpus = load_parallel(str(tmp_path / "c"), ["zh", "en"])
    assert corpus.sentences["zh"] == [GOLD_ZH.split()] and corpus.texts["zh"] == [RAW_ZH]
    assert "zh: gold words (.tok) located in the raw text (.txt), 0 not located" in corpus.word_tokenizer

    source = _ByteDecoder()
    inputs = Representations(source, Cache(tmp_path / "cache"), device="cpu")
    vectors = inputs.word_vectors(corpus, "zh", ExtractionSettings(batch_size=4))
    encoding = source.tokenizer(RAW_ZH, return_offsets_mapping=True)
    assert source.seen[-1] == encoding["input_ids"]  # the model read the raw sentence's ids, no space between words
    with torch.inference_mode():
        states = source.model(input_ids=torch.tensor([encoding["input_ids"]]), output_hidden_states=True).hidden_states
    last_piece = [max(t for t, (start, _) in enumerate(encoding["offset_mapping"]) if a <= start < b) for a, b in corpus.spans["zh"][0]]
    assert vectors.words == GOLD_ZH.split() and len(set(last_piece)) == len(last_piece)
    for layer, state in enumerate(states):
        np.testing.assert_allclose(np.asarray(vectors.layer(layer), dtype=np.float32), state[0, last_piece].numpy(), rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("raw_lines", [1, 3])
def test_raw_and_gold_files_of_different_lengths_are_refused(tmp_path: Path, raw_lines: int) -> None:
    from xlingbench.core.errors import UserError

    (tmp_path / "c.zh.txt").write_text("一\n" * raw_lines, encoding="utf-8")
    (tmp_path / "c.zh.tok").write_text("一\n一\n", encoding="utf-8")
    (tmp_path / "c.en.tok").write_text("one\none\n", encoding="utf-8")
    with pytest.raises(UserError, match="not line-aligned.*c.zh.txt.*c.zh.tok"):
        load_parallel(str(tmp_path / "c"), ["zh", "en"])
