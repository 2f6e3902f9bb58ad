"""A bilingual dictionary induced from the task's own parallel sentences by word alignment.

The CALIGN paper aligned its parallel data with fast_align and took the N best translations of
each source word from Moses' lexical tables. By default the same model aligns both directions
here (:mod:`xlingbench.compute.fast_align`): it has no randomness, so every machine induces the
very same dictionary. eflomal (a Bayesian HMM+fertility aligner, GPL-3, the optional extra
``xlingbench[align]``) remains available with ``aligner="eflomal"``; it seeds its sampler from
/dev/urandom and takes no seed, so two inductions of one corpus can differ slightly, and the
dictionary says so (``deterministic``). The two directions are symmetrised with
grow-diag-final-and and p(t|s) counted as Moses' ``lex.f2e`` (:mod:`xlingbench.compute.alignment`).

The induced dictionary and its links are cached, keyed by the corpus fingerprint, the language
pair and the aligner's name, version and settings, so every later run of a corpus and pair
reads the very same dictionary (which is what makes eflomal's repeatable on one machine).
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from xlingbench.compute import fast_align
from xlingbench.compute.alignment import LexicalTable, Link, grow_diag_final_and, lexical_table, links_array, per_sentence
from xlingbench.core.errors import UserError
from xlingbench.inputs.cache import Cache, cache_key, write_atomic

CACHE_KIND = "alignment"
LEXICON_FILE = "lexicon.txt"
#: the aligners, and whether each gives the same links on every machine
DETERMINISTIC = {"fast_align": True, "eflomal": False}


@dataclass
class InducedDictionary:
    """The full lexical table (best translation first), the links it came from, where it is
    stored, and which aligner made it (so a run can record whether it is repeatable)."""

    table: LexicalTable
    #: symmetrised links, one row per link: sentence index, source position, target position
    links: np.ndarray
    #: the table in lexical-table format inside the cache entry (saved with the run)
    path: Path
    #: cache key of the entry: the dictionary's fingerprint
    fingerprint: str
    #: aligner name and version, e.g. "fast_align-1"
    aligner: str
    #: True when the aligner is deterministic (fast_align), False when it is unseeded (eflomal)
    deterministic: bool


def require_eflomal():
    """The eflomal module, or a UserError saying how to install it."""
    try:
        import eflomal
    except ImportError:
        raise UserError(
            "Inducing a dictionary with aligner=eflomal needs eflomal, which is not installed.",
            "pip install 'xlingbench[align]' (eflomal is GPL-3), use the default aligner fast_align, "
            "or pass a dictionary file: --set task.dictionary=PATH",
        ) from None
    return eflomal


def induce_dictionary(
    src_sents: Sequence[Sequence[str]], tgt_sents: Sequence[Sequence[str]], *, cache: Cache, corpus_fingerprint: str,
    pair: tuple[str, str], aligner: str = "fast_align",
) -> InducedDictionary:
    """The dictionary of ``pair`` induced from sentence-aligned ``src_sents`` / ``tgt_sents`` by
    ``aligner``, read from ``cache`` when this corpus and pair were aligned so before."""
    parts = {
        "corpus": corpus_fingerprint,
        "pair": list(pair),
        **aligner_parts(aligner),
        "symmetrisation": "grow-diag-final-and",
        "lexicon": "moses-lex-f2e",
    }
    # checked again under the lock: a process that waited for another's alignment reads it instead
    with cache.lock(CACHE_KIND, parts) as entry:
        if not cache.is_complete(CACHE_KIND, parts):
            with cache.staging(CACHE_KIND, parts) as tmp:
                links = symmetrised_links(src_sents, tgt_sents, aligner)
                np.save(tmp / "links.npy", links_array(links), allow_pickle=False)
                write_lexical_table(lexical_table(src_sents, tgt_sents, links), tmp / LEXICON_FILE)
    return InducedDictionary(
        table=read_table(entry / LEXICON_FILE),
        links=np.load(entry / "links.npy", allow_pickle=False),
        path=entry / LEXICON_FILE,
        fingerprint=cache_key(parts),
        aligner=parts["aligner"],
        deterministic=DETERMINISTIC[aligner],
    )


def aligner_parts(aligner: str) -> dict[str, Any]:
    """The aligner's part of the cache key: name-version, and fast_align's settings."""
    if aligner == "fast_align":
        return {"aligner": f"fast_align-{fast_align.VERSION}", "aligner_settings": asdict(fast_align.Settings())}
    if aligner == "eflomal":
        require_eflomal()
        return {"aligner": f"eflomal-{metadata.version('eflomal')}"}
    raise UserError(f"aligner={aligner!r} is not a word aligner xlingbench knows.", f"Use one of: {', '.join(DETERMINISTIC)}.")


def read_table(path: Path) -> LexicalTable:
    """A lexical-table file through the one reader of that format (xlingbench.inputs.dictionaries)."""
    from xlingbench.inputs.dictionaries import read_lexical_table

    return read_lexical_table(path)


def symmetrised_links(src_sents: Sequence[Sequence[str]], tgt_sents: Sequence[Sequence[str]], aligner: str) -> list[set[Link]]:
    """Per sentence pair, the grow-diag-final-and symmetrisation of the aligner's two directions."""
    forward, reverse = word_align(src_sents, tgt_sents, aligner)
    return [grow_diag_final_and(f, r) for f, r in zip(forward, reverse)]


def word_align(
    src_sents: Sequence[Sequence[str]], tgt_sents: Sequence[Sequence[str]], aligner: str
) -> tuple[list[set[Link]], list[set[Link]]]:
    """The aligner's forward and reverse links (both as source-target position pairs)."""
    if aligner == "fast_align":
        forward, reverse = fast_align.align(src_sents, tgt_sents)
        return per_sentence(forward.links, len(src_sents)), per_sentence(reverse.links, len(src_sents))
    return eflomal_align(src_sents, tgt_sents)


def eflomal_align(src_sents: Sequence[Sequence[str]], tgt_sents: Sequence[Sequence[str]]) -> tuple[list[set[Link]], list[set[Link]]]:
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


def write_lexical_table(table: LexicalTable, path: str | Path) -> None:
    """Write ``table`` as the published code reads it: ``src -> tgt: Probability = p`` a line,
    each source word's translations best first; written to a temporary file then renamed."""
    write_atomic(Path(path), "".join(_table_lines(table)))


def _table_lines(table: LexicalTable) -> Iterable[str]:
    for s, translations in table.items():
        for t, p in translations:
            yield f"{s} -> {t}: Probability = {p!r}\n"
