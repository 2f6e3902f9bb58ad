"""Word alignments turned into a dictionary, as pure computations over links.

Symmetrisation by grow-diag-final-and (Koehn et al. 2005, Moses' default) of the two
directional alignments, and Moses' ``lex.f2e`` probabilities counted from the symmetrised links
(an unaligned source occurrence counts as a link to NULL, so it lowers the source word's
translation probabilities; NULL itself is never a translation). The aligners themselves and
the cache live in :mod:`xlingbench.inputs.alignment`.
"""
from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np

Link = tuple[int, int]
LexicalTable = dict[str, list[tuple[str, float]]]
_NEIGHBOURS = ((-1, 0), (0, -1), (1, 0), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))


def grow_diag_final_and(forward: set[Link], reverse: set[Link]) -> set[Link]:
    """Koehn's grow-diag-final-and: start from the intersection, add union links neighbouring
    (diagonals included) an aligned link whose source or target word is still unaligned, then
    add any directional link whose two words are both unaligned (forward first, then reverse)."""
    union = forward | reverse
    links = forward & reverse
    aligned_src = {i for i, _ in links}
    aligned_tgt = {j for _, j in links}
    grown = True
    while grown:
        grown = False
        for i, j in sorted(links):
            for di, dj in _NEIGHBOURS:
                cand = (i + di, j + dj)
                if cand in union and cand not in links and (cand[0] not in aligned_src or cand[1] not in aligned_tgt):
                    links.add(cand)
                    aligned_src.add(cand[0])
                    aligned_tgt.add(cand[1])
                    grown = True
    for direction in (forward, reverse):
        for i, j in sorted(direction):
            if i not in aligned_src and j not in aligned_tgt:
                links.add((i, j))
                aligned_src.add(i)
                aligned_tgt.add(j)
    return links


def lexical_table(
    src_sents: Sequence[Sequence[str]], tgt_sents: Sequence[Sequence[str]], links: Sequence[set[Link]]
) -> LexicalTable:
    """p(t|s) = links(s, t) / (links of s + unaligned occurrences of s), as Moses' lex.f2e;
    translations best first (ties by target word, so the table is deterministic)."""
    pair_counts: Counter[tuple[str, str]] = Counter()
    totals: Counter[str] = Counter()
    for src, tgt, sentence_links in zip(src_sents, tgt_sents, links):
        aligned = {i for i, _ in sentence_links}
        for i, j in sentence_links:
            pair_counts[src[i], tgt[j]] += 1
        totals.update(src[i] for i in range(len(src)) if i not in aligned)
        totals.update(src[i] for i, _ in sentence_links)
    table: LexicalTable = {}
    for (s, t), count in pair_counts.items():
        table.setdefault(s, []).append((t, count / totals[s]))
    return {s: sorted(translations, key=lambda tp: (-tp[1], tp[0])) for s, translations in sorted(table.items())}


def best_translations(table: LexicalTable, top_n: int) -> dict[str, list[str]]:
    """T(w): the ``top_n`` most probable translations of each source word (ties by word)."""
    return {s: [t for t, _ in sorted(tr, key=lambda tp: (-tp[1], tp[0]))[:top_n]] for s, tr in table.items()}


def links_array(links: Sequence[set[Link]]) -> np.ndarray:
    """Links as an (n, 3) int32 array of sentence, source position, target position."""
    rows = [(k, i, j) for k, sentence_links in enumerate(links) for i, j in sorted(sentence_links)]
    return np.asarray(rows, dtype=np.int32).reshape(-1, 3)


def per_sentence(links: np.ndarray, n_sentences: int) -> list[set[Link]]:
    """(n, 3) rows of sentence, source position, target position as one link set per sentence."""
    sentences: list[set[Link]] = [set() for _ in range(n_sentences)]
    for k, i, j in links.tolist():
        sentences[k].add((i, j))
    return sentences
