"""Token surface strings in xlingbench's one normalised form (``▁`` marks a word start).

Why its own module: labelling tokens by script (tasks 1-2) and matching dictionary words to
tokens (task 3) both compare the text a token spells, without its boundary marker; the
vocabulary loader (:mod:`xlingbench.inputs.vocab`) produces the form these functions read.
"""
from __future__ import annotations

WORD_START = "\u2581"  # ▁


def strip_markers(token: str) -> str:
    """The token's text without word-boundary markers (▁, Ġ, ##).

    >>> [strip_markers(t) for t in ["\u2581water", "\u0120water", "##ter", "water"]]
    ['water', 'water', 'ter', 'water']
    """
    if token.startswith("##"):
        token = token[2:]
    return token.replace(WORD_START, "").replace("\u0120", "")
