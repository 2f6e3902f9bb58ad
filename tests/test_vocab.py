"""Token surface strings in the common ▁ form, aligned with the embedding rows."""
from __future__ import annotations

import numpy as np
import pytest

from xlingbench.core.errors import UserError
from xlingbench.compute.surface import strip_markers
from xlingbench.inputs.vocab import build_vocabulary, normalise_token, tokenizer_style
from tests.tiny_models import byte_bpe_tokenizer, sentencepiece_tokenizer


def _wordpiece():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "##ing", "walk"])}
    backend = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]")


def _byte_bpe():
    return byte_bpe_tokenizer(["\u0120the", "Ã©", "\u0120caf", "\u0120æ°´"])


def test_styles_are_detected():
    assert tokenizer_style(sentencepiece_tokenizer(["\u2581a"])) == "sentencepiece"
    assert tokenizer_style(_wordpiece()) == "wordpiece"
    assert tokenizer_style(_byte_bpe()) == "byte_bpe"


def test_byte_level_strings_are_mapped_back_to_text():
    vocab = build_vocabulary(_byte_bpe(), np.zeros((5, 4), np.float32), "bpe")
    assert vocab.tokens == ["<|endoftext|>", "\u2581the", "é", "\u2581caf", "\u2581水"]


def test_wordpiece_word_starts_get_the_marker():
    vocab = build_vocabulary(_wordpiece(), np.zeros((7, 4), np.float32), "wp")
    assert vocab.tokens[4:] == ["\u2581the", "ing", "\u2581walk"]
    assert vocab.special_ids == frozenset({0, 1, 2, 3})


def test_padding_rows_are_dropped_and_a_short_matrix_is_refused():
    tok = sentencepiece_tokenizer(["\u2581a", "\u2581b"])
    vocab = build_vocabulary(tok, np.ones((9, 3), np.float32), "sp")
    assert vocab.embeddings.shape == (6, 3) and len(vocab) == 6
    with pytest.raises(UserError, match="tokenizer has 6 tokens but the embedding matrix has only 5 rows"):
        build_vocabulary(tok, np.ones((5, 3), np.float32), "sp")


def test_unit_embeddings_have_norm_one():
    vocab = build_vocabulary(sentencepiece_tokenizer(["\u2581a"]), np.arange(15, dtype=np.float32).reshape(5, 3) + 1, "sp")
    np.testing.assert_allclose(np.linalg.norm(vocab.unit_embeddings, axis=1), 1.0, rtol=1e-6)


def test_a_bfloat16_vocabulary_keeps_its_dtype_and_gives_float32_rows():
    """A bfloat16 matrix is held as it is (padding rows dropped, no float32 copy); ``float32_rows``
    reads its rows as numpy float32, all or some, as a float32 matrix of the same values would."""
    import torch

    matrix = torch.randn(9, 3).to(torch.bfloat16)
    vocab = build_vocabulary(sentencepiece_tokenizer(["\u2581a", "\u2581b"]), matrix, "sp")
    assert vocab.embeddings.dtype == torch.bfloat16 and vocab.embeddings.shape == (6, 3)
    widened = matrix[:6].float().numpy()
    np.testing.assert_array_equal(vocab.float32_rows(), widened)
    np.testing.assert_array_equal(vocab.float32_rows([4, 1]), widened[[4, 1]])
    same = build_vocabulary(sentencepiece_tokenizer(["\u2581a", "\u2581b"]), matrix.float().numpy(), "sp")
    np.testing.assert_array_equal(same.float32_rows(), widened)


@pytest.mark.parametrize("raw,style,expected", [("##ing", "wordpiece", "ing"), ("\u0120the", "byte_bpe", "\u2581the"),
                                                 ("\u2581the", "sentencepiece", "\u2581the")])
def test_normalise_token(raw, style, expected):
    assert normalise_token(raw, style) == expected
    assert strip_markers(expected) == expected.replace("\u2581", "")
