"""The reading rules of the word vectors, with a tokenizer and no model (xlingbench.inputs.word_reading)."""
from __future__ import annotations

from xlingbench.inputs.word_reading import Reader, owners, window_starts
from tests.tiny_models import sentencepiece_tokenizer


def test_a_subword_belongs_to_the_word_where_it_starts_and_whitespace_to_none() -> None:
    spans = [(0, 3), (4, 7)]  # "the cat"
    offsets = [(0, 2), (2, 5), (3, 4), (5, 7), (7, 7)]  # "th", "e c" (straddles), " ", "at", empty
    assert owners(offsets, spans) == [0, 0, None, 1, None]


def test_windows_start_every_half_window_until_the_end_is_in_one() -> None:
    assert window_starts(5, 8) == [0]
    assert window_starts(20, 8) == [0, 4, 8, 12]
    assert window_starts(3, 1) == [0, 1, 2]


def test_a_long_sentence_is_read_in_windows_each_word_where_it_has_most_context() -> None:
    words = [f"w{i}" for i in range(10)]
    tokenizer = sentencepiece_tokenizer(["\u2581" + w for w in words])
    reader = Reader(tokenizer, max_length=6, causal=False)  # <s> + 4 subwords + </s>
    text = " ".join(words)
    spans, start = [], 0
    for w in words:
        spans.append((start, start + len(w)))
        start += len(w) + 1
    encoded = reader.encode(0, text, spans)
    assert encoded.lost == 0 and encoded.positions == list(range(10))
    assert [len(w.input_ids) for w in encoded.windows] == [6, 6, 6, 6]
    chosen = {rank: k for k, window in enumerate(encoded.windows) for rank in window.ranks}
    assert chosen == {0: 0, 1: 0, 2: 0, 3: 1, 4: 1, 5: 2, 6: 2, 7: 3, 8: 3, 9: 3}
    causal = Reader(tokenizer, max_length=6, causal=True).encode(0, text, spans)
    assert {rank: k for k, w in enumerate(causal.windows) for rank in w.ranks}[3] == 0  # most words before it: the first window
