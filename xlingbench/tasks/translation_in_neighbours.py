"""Task 3 — translation in neighbours (after Wen-Yi & Mimno 2023, section 5; docs/tasks.md, task 3).

Are a word's translations among its nearest neighbours in the input embeddings? The paper
judged this by hand; this is xlingbench's metric (docs/tasks.md):

- A query is an English dictionary word whose word-start form (``▁water``) is one token of the
  vocabulary, with at least one translation that is also one token, with or without ``▁``.
  There is no fallback to the bare piece: ``america`` without ``▁`` is a piece of other words.
- A translation with the query's surface key (text without ``▁``/``Ġ``/``##``, lowercased) is
  dropped: ``taxi`` -> ``taxi`` (and ``Taxi``) is a copy, not evidence of cross-lingual meaning.
- The query's surface variants (every token with its surface key: ``▁Water``, ``water``...)
  are skipped when ranking: they are nearly always nearest and say nothing about languages.
- A translation's rank is 1 + the number of other non-skipped tokens strictly more similar
  (exact cosine over the whole vocabulary; a tie counts in the translation's favour). hit@k is
  the share of queries whose best-ranked translation has rank <= k; ``mean_rank`` is the mean
  rank of the best translation. Per pair (``hit_at_10/en-de``, ``mean_rank/en-de``,
  ``queries/en-de``) and the unweighted mean over pairs (``hit_at_10``, ``mean_rank``).

The headline is ``hit_at_10``: hit@1 is mostly decided by same-language near-duplicates that
are not surface variants (``▁waters``, ``▁Water-``), which crowd rank 1 in every model, while
ten neighbours is what a reader takes in at a glance (the paper's own neighbour lists) and
still separates a language-clustered space (XLM-R) from a semantic one (mT5).
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from xlingbench.core.errors import UserError
from xlingbench.compute.surface import WORD_START, strip_markers
from xlingbench.core.task import Chart, Task, TaskMetadata, TaskResult
from xlingbench.compute.neighbours import best_target_ranks, top_k_neighbours
from xlingbench.inputs.dictionaries import LANGUAGE_CODE

HEADLINE_K = 10


@dataclass
class Params:
    """Parameters of ``translation_in_neighbours`` (``--set translation_in_neighbours.<name>=<value>``)."""

    dictionary: str = "cldr"  # "cldr" (offline), "muse" (download), or files/dirs named en-<lang>.txt, comma-separated
    pairs: list[str] = field(default_factory=list)  # target languages to keep (e.g. de,ja); empty = all
    ks: list[int] = field(default_factory=lambda: [1, 10, 50])  # the k of hit@k (10, the headline, is always added)
    examples: int = 10  # queries per pair shown with their nearest neighbours
    seed: int = 150  # which queries are shown
    match_case: bool = True  # false: a translation counts in any capitalisation (for lowercase MUSE)

    def validate(self) -> None:
        """Positive ks, a non-negative number of examples, dictionary files that exist, and pairs
        that are language codes (a pair names a file in the cache: ``../../x`` would leave it)."""
        codes = [p for p in self.pairs if not re.fullmatch(LANGUAGE_CODE, p)]
        if codes:
            raise ValueError(f"pairs={','.join(self.pairs)}: {codes[0]!r} is not a language code such as de, zh or pt_BR")
        if not self.ks or any(k < 1 for k in self.ks):  # an empty list (--set ks=) too: refused before a model loads
            raise ValueError(f"ks={','.join(map(str, self.ks))} must list positive integers, e.g. 1,10,50")
        if self.examples < 0:
            raise ValueError(f"examples={self.examples} must be 0 or more")
        missing = [part for part in self.dictionary.split(",") if part.strip() not in ("cldr", "muse") and not Path(part.strip()).exists()]
        if missing:
            raise ValueError(f"dictionary={self.dictionary!r}: {missing[0]!r} is not 'cldr', 'muse' or an existing file or folder")


@dataclass
class Queries:
    """The scorable queries of one dictionary against one vocabulary."""

    words: list[str] = field(default_factory=list)
    query_ids: list[int] = field(default_factory=list)
    targets: list[np.ndarray] = field(default_factory=list)  # ids of translations, either form
    variants: list[np.ndarray] = field(default_factory=list)  # ids skipped when ranking (query's own included)
    translations: list[list[str]] = field(default_factory=list)


def surface_key(token: str) -> str:
    """The text a token spells, without boundary markers, lowercased: its surface variants share it."""
    return strip_markers(token).lower()


@dataclass(frozen=True)
class TokenIndex:
    """A vocabulary's token lookups, built once and shared by every dictionary's queries (building
    them per dictionary was most of task 3's time: 12 passes over a 250k vocabulary in Python)."""

    ids: dict[str, int]  # token -> its first id
    folded: dict[str, list[int]]  # lowercased token -> ids
    variants: dict[str, list[int]]  # surface key -> ids


def token_index(tokens: Sequence[str], special_ids: frozenset[int] = frozenset()) -> TokenIndex:
    """The lookups :func:`build_queries` needs, special tokens left out.

    >>> token_index(["<s>", "\u2581Water", "water"], frozenset({0})).variants
    {'water': [1, 2]}
    """
    ids: dict[str, int] = {}
    folded: dict[str, list[int]] = {}
    variants: dict[str, list[int]] = {}
    for i, tok in enumerate(tokens):
        if i not in special_ids:
            ids.setdefault(tok, i)
            folded.setdefault(tok.lower(), []).append(i)
            variants.setdefault(surface_key(tok), []).append(i)
    return TokenIndex(ids, folded, variants)


def build_queries(tokens: Sequence[str], entries: dict[str, list[str]], special_ids: frozenset[int] = frozenset(),
                  match_case: bool = True, index: TokenIndex | None = None) -> Queries:
    """Queries and translation ids of ``entries`` (English word -> translations) in ``tokens``.

    With ``match_case=False`` a translation also counts in any capitalisation (MUSE is all
    lowercase, so ``wasser`` then finds ``▁Wasser``); the default follows docs/tasks.md.
    ``index``: :func:`token_index` of ``tokens`` and ``special_ids``, when several dictionaries share it.
    """
    index = token_index(tokens, special_ids) if index is None else index
    ids, folded, variants = index.ids, index.folded, index.variants
    forms = (lambda t: _either_form(ids, t)) if match_case else (lambda t: _any_case(folded, t))
    found = Queries()
    for word, translations in entries.items():
        query = ids.get(WORD_START + word)
        if query is None:
            continue
        key = surface_key(tokens[query])
        kept = [t for t in translations if surface_key(t) != key and forms(t)]
        if not kept:
            continue
        found.words.append(word)
        found.query_ids.append(query)
        found.targets.append(np.array(sorted({i for t in kept for i in forms(t)}), dtype=np.int64))
        found.variants.append(np.array(variants[key], dtype=np.int64))
        found.translations.append(kept)
    return found


def _either_form(ids: dict[str, int], word: str) -> list[int]:
    """Token ids of ``word`` with and without the word-start marker."""
    return [ids[form] for form in (WORD_START + word, word) if form in ids]


def _any_case(folded: dict[str, list[int]], word: str) -> list[int]:
    """Token ids of ``word`` in any capitalisation, with and without the word-start marker."""
    return [i for form in (WORD_START + word.lower(), word.lower()) for i in folded.get(form, [])]


def pair_best_ranks(unit: np.ndarray, pairs: Sequence[Queries], device: str = "cpu", normalise: bool = False) -> list[np.ndarray]:
    """1-based rank of each query's best-ranked translation, its surface variants skipped, per pair.

    Why together: the English side is shared, so most queries recur in every pair; each
    distinct query's similarity row (the costly part) is computed once, and each of its pairs
    costs one comparison pass. A query's skipped variants depend on its token only. With
    ``normalise``, ``unit`` is the raw matrix, normalised as needed (no unit copy of it).
    """
    distinct = sorted({q for queries in pairs for q in queries.query_ids})
    at = {q: n for n, q in enumerate(distinct)}
    groups: list[list[np.ndarray]] = [[] for _ in distinct]
    skipped: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * len(distinct)
    slots = []  # (distinct position, group position) of each pair's queries
    for queries in pairs:
        slots.append([(at[q], len(groups[at[q]])) for q in queries.query_ids])
        for q, targets, variants in zip(queries.query_ids, queries.targets, queries.variants):
            groups[at[q]].append(targets)
            skipped[at[q]] = variants
    ranks = best_target_ranks(unit, np.array(distinct, dtype=np.int64), groups, exclude_self=True, exclude=skipped,
                              device=device, normalise=normalise)
    return [np.array([ranks[n][g] + 1 for n, g in pair], dtype=np.int64) for pair in slots]


def hit_ks(ks: list[int]) -> list[int]:
    """The k of hit@k, sorted, with 10 always in (the headline is hit@10)."""
    return sorted({HEADLINE_K, *ks})


def run(inputs, params: Params) -> TaskResult:
    """Adapter: dictionaries -> queries per pair -> exact ranks -> hit@k and examples."""
    ks = hit_ks(params.ks)
    dictionaries = inputs.dictionaries(params.dictionary, params.pairs)
    vocab = inputs.vocabulary
    metrics: dict[str, float] = {}
    rows, examples = [], []
    index = token_index(vocab.tokens, vocab.special_ids)
    built = [build_queries(vocab.tokens, d.entries, vocab.special_ids, params.match_case, index) for d in dictionaries]
    scored = [(d, q) for d, q in zip(dictionaries, built) if q.words]
    empty = [d.pair for d, q in zip(dictionaries, built) if not q.words]
    all_ranks = pair_best_ranks(vocab.embeddings, [q for _, q in scored], inputs.device, normalise=True)
    for (dictionary, queries), ranks in zip(scored, all_ranks):
        rows.append(_pair_row(dictionary.pair, ranks, ks, metrics))
        examples += _examples(vocab, queries, ranks, dictionary.pair, params, inputs.device)
    if not rows:
        raise UserError(
            f"no query of {', '.join(d.pair for d in dictionaries)} is a single token of {inputs.model_id}.",
            "Use a larger dictionary (dictionary=muse or local MUSE files).",
        )
    for name in [f"hit_at_{k}" for k in ks] + ["mean_rank"]:
        metrics[name] = float(np.mean([row[name] for row in rows]))
    info = {"dictionaries": {d.pair: d.record() for d in dictionaries}, "pairs_without_queries": empty,
            "inputs": {f"dictionary/{d.pair}": d.fingerprint for d in dictionaries},
            "rank": "1 + non-skipped tokens strictly more similar; ties favour the translation"}
    return TaskResult(task=TASK.metadata.name, params=asdict(params), metrics=metrics,
                      tables={"pairs": rows, "examples": examples},
                      info=info)


def _pair_row(pair: str, ranks: np.ndarray, ks: list[int], metrics: dict[str, float]) -> dict:
    """One pair's scores, added to ``metrics`` as ``<metric>/<pair>`` and returned as a table row."""
    row: dict = {"pair": pair, "queries": len(ranks)}
    row.update({f"hit_at_{k}": float(np.mean(ranks <= k)) for k in ks})
    row["mean_rank"] = float(ranks.mean())
    metrics.update({f"{name}/{pair}": float(value) for name, value in row.items() if name != "pair"})
    return row


def _examples(vocab, queries: Queries, ranks: np.ndarray, pair: str, params: Params, device: str) -> list[dict]:
    """A seeded sample of queries with their translations, best rank and nearest neighbours (up to 10)."""
    n = min(params.examples, len(queries.words))
    if n <= 0:
        return []
    chosen = np.sort(np.random.default_rng(params.seed).choice(len(queries.words), size=n, replace=False))
    ids = np.array(queries.query_ids)[chosen]
    k = min(HEADLINE_K, len(vocab) - max(len(queries.variants[c]) for c in chosen))
    neighbours, _ = top_k_neighbours(vocab.embeddings, ids, k, exclude=[queries.variants[c] for c in chosen],
                                     device=device, normalise=True)
    return [{"pair": pair, "query": vocab.tokens[queries.query_ids[c]], "translations": " ".join(queries.translations[c]),
             "best_rank": int(ranks[c]), "neighbours": " ".join(vocab.tokens[j] for j in row)}
            for c, row in zip(chosen, neighbours)]


TASK = Task(
    metadata=TaskMetadata(
        name="translation_in_neighbours",
        description="Share of English words with a dictionary translation among their k nearest "
        "input-embedding neighbours (exact cosine, own surface variants skipped).",
        reference="Wen-Yi & Mimno 2023, Hyperpolyglot LLMs, EMNLP (arXiv 2311.18034), section 5; "
        "metric defined in xlingbench docs/tasks.md",
        main_score="hit_at_10",
        version="3",
        options=("dictionary", "seed"),
        charts=tuple(Chart(name=f"hit_at_{k}_by_pair", kind="bar", metric=f"hit_at_{k}", title=f"Translation among the {k} nearest neighbours",
                           xlabel="language pair", ylabel=f"hit@{k}") for k in (1, 10, 50)),
        published={},
    ),
    params=Params,
    run=run,
)
