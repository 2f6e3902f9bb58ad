"""Tokens that are not text: byte tokens and control tokens are left out of both labelling schemes.

Planted vocabularies: a '▁' vocabulary with byte fallback (Gemma, Llama-2), a GPT-2 byte-level
vocabulary with fragments of characters, and added tokens flagged special that the tokenizer
does not list in ``all_special_ids`` (Gemma's ``<unusedN>``).
"""
from __future__ import annotations

import numpy as np
import pytest

from xlingbench.compute.categories import label_vocabulary
from xlingbench.inputs.vocab import build_vocabulary
from xlingbench.tasks.translation_in_neighbours import build_queries
from tests.tiny_models import byte_bpe_tokenizer

BYTES = [f"<0x{b:02X}>" for b in range(256)]
WORDS = ["water", "eau", "Wasser", "水", "вода"]


def _metaspace_tokenizer(pieces: list[str], byte_fallback: bool, unused: int = 0):
    """A Gemma-style BPE: <pad> <eos> <bos> <unk>, then ``pieces``; ``unused`` added tokens flagged special."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["<pad>", "<eos>", "<bos>", "<unk>", *pieces])}
    backend = Tokenizer(models.BPE(vocab, merges=[], unk_token="<unk>", byte_fallback=byte_fallback))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    backend.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>",
                                        bos_token="<bos>", unk_token="<unk>")
    tokenizer.add_tokens([AddedToken(f"<unused{i}>", special=True) for i in range(unused)])
    tokenizer.add_tokens([AddedToken("<table>", special=False)])
    return tokenizer


def _labelled(tokenizer, scheme: str) -> dict[str, object]:
    vocab = build_vocabulary(tokenizer, np.zeros((len(tokenizer), 2), np.float32), "planted")
    raw = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    return dict(zip(raw, label_vocabulary(vocab.tokens, scheme, vocab.special_ids, vocab.excluded_ids)))


@pytest.mark.parametrize("scheme", ["paper", "script"])
def test_byte_fallback_and_unused_tokens_get_no_label(scheme: str) -> None:
    tokenizer = _metaspace_tokenizer(BYTES + ["\u2581" + w for w in WORDS], byte_fallback=True, unused=3)
    labels = _labelled(tokenizer, scheme)
    assert tokenizer.all_special_ids == [2, 1, 3, 0] or set(tokenizer.all_special_ids) == {0, 1, 2, 3}
    assert all(labels[b] is None for b in BYTES)
    assert all(labels[f"<unused{i}>"] is None for i in range(3))
    expected = {"paper": ["LATIN", "LATIN", "LATIN", "S", "CYRILLIC"], "script": ["Latin", "Latin", "Latin", "Han", "Cyrillic"]}
    assert [labels["\u2581" + w] for w in WORDS] == expected[scheme]
    assert labels["<table>"] == {"paper": "LATIN", "script": "Latin"}[scheme]  # an added token not flagged special is text
    # "▁水" is S in paper: ▁ (So) and 水 tie, the first seen wins, as published.
    # the tokenizer's own special tokens keep the published treatment: labelled in paper, not in script
    assert labels["<bos>"] == {"paper": "LATIN", "script": None}[scheme]


def test_byte_pieces_without_byte_fallback_are_text() -> None:
    labels = _labelled(_metaspace_tokenizer(["<0x41>", "\u2581water"], byte_fallback=False), "script")
    assert labels["<0x41>"] == "Latin"


@pytest.mark.parametrize("scheme", ["paper", "script"])
def test_byte_level_fragments_get_no_label_but_whole_characters_do(scheme: str) -> None:
    from tokenizers import pre_tokenizers

    encode = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False).pre_tokenize_str
    whole = {w: encode(" " + w)[0][0] for w in WORDS}  # 'Ġæ°´' spells ' 水'
    water = whole["水"]
    fragments = [water[:-1], water[-1], whole["вода"][:2]]  # ' ' + two of 水's three bytes; its last byte; ' ' + half of в
    labels = _labelled(byte_bpe_tokenizer(list(whole.values()) + fragments), scheme)
    assert all(labels[f] is None for f in fragments)
    assert labels[water] == {"paper": "S", "script": "Han"}[scheme]  # "▁水": a tie, the first seen (▁, S) wins
    assert labels[whole["вода"]] == {"paper": "CYRILLIC", "script": "Cyrillic"}[scheme]


def test_excluded_ids_name_exactly_the_non_text_tokens() -> None:
    tokenizer = _metaspace_tokenizer(BYTES + ["\u2581water"], byte_fallback=True, unused=2)
    vocab = build_vocabulary(tokenizer, np.zeros((len(tokenizer), 2), np.float32), "planted")
    raw = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    assert sorted(raw[i] for i in vocab.excluded_ids) == sorted(BYTES + ["<unused0>", "<unused1>"])
    assert not vocab.excluded_ids & vocab.special_ids


def test_metaspace_and_byte_level_vocabularies_of_the_same_words_give_the_same_queries() -> None:
    from tokenizers import pre_tokenizers

    encode = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False).pre_tokenize_str
    entries = {"water": ["eau", "Wasser", "水", "вода"], "fire": ["feu"]}
    metaspace = _metaspace_tokenizer(BYTES + ["\u2581" + w for w in WORDS], byte_fallback=True, unused=2)
    byte_level = byte_bpe_tokenizer([encode(" " + w)[0][0] for w in WORDS] + [encode(" 水")[0][0][:-1]])
    found = []
    for tokenizer in (metaspace, byte_level):
        vocab = build_vocabulary(tokenizer, np.zeros((len(tokenizer), 2), np.float32), "planted")
        queries = build_queries(vocab.tokens, entries, vocab.special_ids)
        found.append((queries.words, [vocab.tokens[i] for i in queries.query_ids],
                      [sorted(vocab.tokens[i] for i in t) for t in queries.targets]))
    assert found[0] == found[1]
    assert found[0][0] == ["water"] and found[0][2] == [sorted("\u2581" + w for w in ["eau", "Wasser", "水", "вода"])]
