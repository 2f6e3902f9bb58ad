"""A bilingual dictionary induced from the task's own parallel sentences by word alignment.

The CALIGN paper aligned its parallel data with fast_align and took the N best translations of
each source word from Moses' lexical tables. Here: eflomal (a Bayesian HMM+fertility aligner of
the same family, on PyPI) aligns both directions, the two directions are symmetrised with
grow-diag-final-and (Koehn et al. 2005, Moses' default), and p(t|s) is estimated by counting
links exactly as Moses' ``lex.f2e`` (an unaligned source occurrence counts as a link to NULL,
so it lowers the source word's translation probabilities; NULL itself is never a translation).

eflomal is GPL-3, so it is the optional extra ``xlingbench[align]``. It seeds its sampler from
/dev/urandom and takes no seed: two inductions of one corpus can differ slightly. The induced
dictionary and its links are therefore cached (keyed by the corpus fingerprint and the language
pair) and reused, so every later run of a corpus and pair reads the very same dictionary.
"""
from __future__ import annotations

import os
import tempfile
from collections import Counter
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from xlingbench.inputs.cache import Cache, cache_key, write_atomic
from xlingbench.core.errors import UserError

Link = tuple[int, int]
LexicalTable = dict[str, list[tuple[str, float]]]
CACHE_KIND = "alignment"
LEXICON_FILE = "lexicon.txt"
_NEIGHBOURS = ((-1, 0), (0, -1), (1, 0), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))


@dataclass
class InducedDictionary:
    """The full lexical table (best translation first), the links it came from, where it is stored."""

    table: LexicalTable
    #: symmetrised links, one row per link: sentence index, source position, target position
    links: np.ndarray
    #: the table in lexical-table format inside the cache entry (saved with the run)
    path: Path
    #: cache key of the entry: the dictionary's fingerprint
    fingerprint: str


def require_eflomal():
    """The eflomal module, or a UserError saying how to install it."""
    try:
        import eflomal
    except ImportError:
        raise UserError(
            "Inducing a dictionary needs the word aligner eflomal, which is not installed.",
            "pip install 'xlingbench[align]' (eflomal is GPL-3), or pass a dictionary file: --set task.dictionary=PATH",
        ) from None
    return eflomal


def induce_dictionary(
    src_sents: Sequence[Sequence[str]], tgt_sents: Sequence[Sequence[str]], *, cache: Cache, corpus_fingerprint: str, pair: tuple[str, str]
) -> InducedDictionary:
    """The dictionary of ``pair`` induced from sentence-aligned ``src_sents`` / ``tgt_sents``,
    read from ``cache`` when this corpus and pair were aligned before."""
    require_eflomal()
    parts = {
        "corpus": corpus_fingerprint,
        "pair": list(pair),
        "aligner": f"eflomal-{metadata.version('eflomal')}",
        "symmetrisation": "grow-diag-final-and",
        "lexicon": "moses-lex-f2e",
    }
    if cache.load(CACHE_KIND, parts) is None:
        with cache.staging(CACHE_KIND, parts) as tmp:
            links = symmetrised_links(src_sents, tgt_sents)
            np.save(tmp / "links.npy", _links_array(links), allow_pickle=False)
            write_lexical_table(lexical_table(src_sents, tgt_sents, links), tmp / LEXICON_FILE)
    entry = cache.entry_dir(CACHE_KIND, parts)
    return InducedDictionary(
        table=read_table(entry / LEXICON_FILE),
        links=np.load(entry / "links.npy", allow_pickle=False),
        path=entry / LEXICON_FILE,
        fingerprint=cache_key(parts),
    )


def read_table(path: Path) -> LexicalTable:
    """A lexical-table file through the one reader of that format (xlingbench.inputs.dictionaries)."""
    from xlingbench.inputs.dictionaries import read_lexical_table

    return read_lexical_table(path)


def symmetrised_links(src_sents: Sequence[Sequence[str]], tgt_sents: Sequence[Sequence[str]]) -> list[set[Link]]:
    """Per sentence pair, the grow-diag-final-and symmetrisation of eflomal's two directions."""
    forward, reverse = word_align(src_sents, tgt_sents)
    return [grow_diag_final_and(f, r) for f, r in zip(forward, reverse)]


def word_align(src_sents: Sequence[Sequence[str]], tgt_sents: Sequence[Sequence[str]]) -> tuple[list[set[Link]], list[set[Link]]]:
    """eflomal's forward and reverse links (both as source-target position pairs)."""
    eflomal = require_eflomal()
    with tempfile.TemporaryDirectory(prefix="xlingbench-align-") as tmp:
        fwd, rev = os.path.join(tmp, "fwd"), os.path.join(tmp, "rev")
        eflomal.Aligner().align(
            [_eflomal_line(s) for s in src_sents], [_eflomal_line(t) for t in tgt_sents],
            links_filename_fwd=fwd, links_filename_rev=rev, quiet=True,
        )
        return read_links(fwd), read_links(rev)


def _eflomal_line(words: Sequence[str]) -> str:
    """One sentence as eflomal reads it: a word holding whitespace is joined with '_' so that
    positions stay those of ``words`` (links map back to the original words by position)."""
    return " ".join("_".join(w.split()) or "_" for w in words)


def read_links(path: str | Path) -> list[set[Link]]:
    """Pharaoh-format links ("i-j i-j ..."), one line per sentence pair."""
    with open(path, encoding="utf-8") as lines:
        return [{_parse_link(token) for token in line.split()} for line in lines]


def _parse_link(token: str) -> Link:
    i, j = token.split("-")
    return int(i), int(j)


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


def write_lexical_table(table: LexicalTable, path: str | Path) -> None:
    """Write ``table`` as the published code reads it: ``src -> tgt: Probability = p`` a line,
    each source word's translations best first; written to a temporary file then renamed."""
    write_atomic(Path(path), "".join(_table_lines(table)))


def _table_lines(table: LexicalTable) -> Iterable[str]:
    for s, translations in table.items():
        for t, p in translations:
            yield f"{s} -> {t}: Probability = {p!r}\n"


def _links_array(links: Sequence[set[Link]]) -> np.ndarray:
    """Links as an (n, 3) int32 array of sentence, source position, target position."""
    rows = [(k, i, j) for k, sentence_links in enumerate(links) for i, j in sorted(sentence_links)]
    return np.asarray(rows, dtype=np.int32).reshape(-1, 3)
