"""fast_align (Dyer, Chahuneau & Smith 2013) as deterministic array code.

Why: the CALIGN paper induced its dictionary with fast_align, and the aligner we used before
(eflomal) seeds itself from /dev/urandom, so its dictionaries differ between machines. This
model has no randomness at all: IBM Model 2 whose alignment prior favours the diagonal,
p(a_j = i) ∝ exp(λ · -|i/n - j/m|), a NULL word with fixed prior ``p_null``, lexical
probabilities with a Dirichlet(α) prior estimated by variational Bayes, and λ re-fitted to the
expected diagonal feature after every E-step but the first. These are the settings of
``fast_align -d -o -v`` (5 iterations, λ starting at 4, p_null 0.08, α 0.01).

It follows the reference program (github.com/clab/fast_align, src/fast_align.cc) step by step
so that its links are those of the binary, including three of its details a paper reader
would not guess: the first E-step uses one constant 1e-9 for every lexical probability (so its
posteriors are the prior alone); the expected feature sums ``-|i/n - j'/m|`` with the
*0-based* target position j' while the prior uses the 1-based j; and the derivative of log Z
used to fit λ normalises by Z computed with the two sentence lengths swapped (with C's
unsigned wrap-around when the target is longer). Its digamma is the reference's series too.
One deliberate difference: the diagonal feature -|i/n - j/m| is computed as -|i·m - j·n| / (n·m)
from exact integers. Two source positions equally far from the diagonal (a word occurring twice)
then score exactly alike on every machine and the first wins, as in the reference for exact
ties; the reference's floating-point i/n - j/m breaks such ties by rounding, which can differ
with the CPU's exp. On PUD en-de the links equal the binary's but for these ties.

Every step is vectorised over all target tokens of the corpus: a *cell* is one (target token,
source position) pair, cells are laid out token after token in corpus order, and each E-step
is a handful of array operations over the cells plus ``np.bincount`` scatters into the
translation table (one entry per co-occurring word pair, NULL included). Cells are processed
in chunks so memory stays bounded whatever the corpus size.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, NamedTuple, Sequence

import numpy as np

#: bump when a change alters the links (cache keys of induced dictionaries include it)
VERSION = "1"
#: (target token, source position) cells scored at once: ~16 arrays of this many values
CHUNK_CELLS = 1 << 21
#: every lexical probability before the first normalisation (the reference's TTable::prob)
_UNINITIALISED_PROB = 1e-9
#: the reference clamps the fitted tension to this range after every update
_TENSION_RANGE = (0.1, 14.0)
#: gradient steps (and their size) of one tension fit, as in the reference
_TENSION_STEPS, _TENSION_RATE = 8, 20.0


@dataclass(frozen=True)
class Settings:
    """The model's hyper-parameters; the defaults are fast_align's with ``-d -o -v``."""

    iterations: int = 5
    p_null: float = 0.08
    tension: float = 4.0
    alpha: float = 0.01

    def check(self) -> None:
        """ValueError for settings the model is undefined for."""
        if self.iterations < 1:
            raise ValueError(f"iterations={self.iterations}: EM needs at least one iteration")
        if not 0.0 < self.p_null < 1.0:
            raise ValueError(f"p_null={self.p_null}: must be strictly between 0 and 1")
        if self.tension <= 0.0 or self.alpha <= 0.0:
            raise ValueError(f"tension={self.tension}, alpha={self.alpha}: both must be positive")


@dataclass(frozen=True)
class Alignment:
    """One direction's Viterbi links and the diagonal tension λ it ended with."""

    #: (n, 3) int32 rows of sentence index, source position, target position, sorted
    links: np.ndarray
    tension: float


def align(
    src_sents: Sequence[Sequence[Hashable]], tgt_sents: Sequence[Sequence[Hashable]], settings: Settings = Settings()
) -> tuple[Alignment, Alignment]:
    """fast_align's forward (target words generated from source words) and reverse (``-r``:
    source from target) alignments of sentence-aligned corpora; both give links as (source
    position, target position). A pair with an empty side is left out and gets no link."""
    if len(src_sents) != len(tgt_sents):
        raise ValueError(f"{len(src_sents)} source sentences but {len(tgt_sents)} target sentences")
    settings.check()
    src, tgt = _Side.encode(src_sents), _Side.encode(tgt_sents)
    usable = np.flatnonzero((src.lengths > 0) & (tgt.lengths > 0))
    forward = _train_and_align(_direction(src, tgt, usable), settings)
    reverse = _train_and_align(_direction(tgt, src, usable), settings)
    return forward, Alignment(_sorted_links(reverse.links[:, [0, 2, 1]]), reverse.tension)


@dataclass(frozen=True)
class _Side:
    """One language's sentences as word ids, concatenated."""

    ids: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    vocab_size: int

    @classmethod
    def encode(cls, sentences: Sequence[Sequence[Hashable]]) -> "_Side":
        vocab: dict[Hashable, int] = {}
        ids = np.fromiter((vocab.setdefault(w, len(vocab)) for s in sentences for w in s), dtype=np.int64)
        lengths = np.fromiter((len(s) for s in sentences), dtype=np.int64, count=len(sentences))
        return cls(ids, _starts(lengths), lengths, len(vocab))


@dataclass(frozen=True)
class _Direction:
    """A corpus seen as e (conditioning) sentences generating f sentences: one row per f token
    (1-based position j, e length n = its number of cells, sentence index, its cells' place in
    the per-shape tables), the chunks of tokens whose cells are scored together, the word pair of every cell and of every
    token's NULL cell, the e word of every pair (NULL is e = vocabulary size), and the sentence
    shapes for λ's fit."""

    j: np.ndarray
    n: np.ndarray
    sentence: np.ndarray
    cell_base: np.ndarray  # where the token's row of its shape's cells starts in the shape tables
    bounds: np.ndarray  # token index where each chunk starts, then the number of tokens
    pairs: list[np.ndarray]
    null_pair: np.ndarray
    pair_e: np.ndarray
    shapes: "_Shapes"

    @property
    def chunks(self) -> int:
        return len(self.bounds) - 1


def _direction(e: _Side, f: _Side, usable: np.ndarray) -> _Direction:
    """Lay out the cells and number the co-occurring (e, f) pairs, NULL's included, in key order
    e * |F| + f (so each e's pairs are contiguous)."""
    m, n = f.lengths[usable], e.lengths[usable]
    sent = np.repeat(np.arange(len(usable)), m)
    j = _positions(m)
    f_word, e_start, tok_n = f.ids[f.starts[usable][sent] + j - 1], e.starts[usable][sent], n[sent]
    bounds = _chunk_bounds(tok_n)

    def cell_keys(c: int) -> np.ndarray:
        tokens = slice(bounds[c], bounds[c + 1])
        e_word = e.ids[np.repeat(e_start[tokens], tok_n[tokens]) + _positions(tok_n[tokens]) - 1]
        return e_word * f.vocab_size + np.repeat(f_word[tokens], tok_n[tokens])

    null_keys = e.vocab_size * f.vocab_size + f_word
    local = [_unique_inverse(cell_keys(c)) for c in range(len(bounds) - 1)]
    keys = _sorted_unique(np.concatenate([u for u, _ in local] + [null_keys]))
    pairs = [np.searchsorted(keys, u).astype(np.int32)[inverse] for u, inverse in local]
    shapes = _Shapes.of(m, n)
    cell_base = shapes.offset[shapes.index(m[sent], tok_n)] + (j - 1) * tok_n
    return _Direction(j, tok_n, usable[sent], cell_base, bounds, pairs, np.searchsorted(keys, null_keys).astype(np.int32),
                      keys // f.vocab_size, shapes)


def _chunk_bounds(cells_per_token: np.ndarray) -> np.ndarray:
    """Token boundaries cutting the cells into chunks of about CHUNK_CELLS (a token is never split)."""
    cells_before = np.concatenate(([0], np.cumsum(cells_per_token)))
    starts = np.searchsorted(cells_before, np.arange(0, cells_before[-1], CHUNK_CELLS), side="right") - 1
    return np.append(np.unique(starts), len(cells_per_token))


def _unique_inverse(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct keys and each key's index among them (np.unique's, by a faster sort)."""
    order = np.argsort(keys)
    ordered = keys[order]
    new = _run_starts(ordered)
    inverse = np.empty(len(keys), np.int32)
    inverse[order] = np.cumsum(new) - 1
    return ordered[new], inverse


def _sorted_unique(keys: np.ndarray) -> np.ndarray:
    ordered = np.sort(keys)
    return ordered[_run_starts(ordered)]


def _run_starts(ordered: np.ndarray) -> np.ndarray:
    return np.concatenate(([True], ordered[1:] != ordered[:-1]))[: len(ordered)]


@dataclass(frozen=True)
class _Shapes:
    """The distinct sentence shapes (m, n). The prior of a cell depends only on its shape and
    (j, i), so it is computed once per iteration for every (shape, j, i) and gathered, instead
    of once per cell of the corpus. Rows: every (j, i) of every shape (j major), and, for the
    fit of λ, every j of every shape with the number of sentences of that shape."""

    keys: np.ndarray
    base: int
    offset: np.ndarray  # where each shape's rows start
    j: np.ndarray
    i: np.ndarray
    m: np.ndarray
    n: np.ndarray
    fit: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # j, m, n, sentences

    @classmethod
    def of(cls, m: np.ndarray, n: np.ndarray) -> "_Shapes":
        base = int(n.max(initial=0)) + 1
        keys, weight = np.unique(m * base + n, return_counts=True)
        shape_m, shape_n = np.divmod(keys, base)
        within = _positions(shape_m * shape_n) - 1
        row_m, row_n = np.repeat(shape_m, shape_m * shape_n), np.repeat(shape_n, shape_m * shape_n)
        fit = (_positions(shape_m), np.repeat(shape_m, shape_m), np.repeat(shape_n, shape_m), np.repeat(weight, shape_m))
        return cls(keys, base, _starts(shape_m * shape_n), within // row_n + 1, within % row_n + 1, row_m, row_n, fit)

    def index(self, m: np.ndarray, n: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.keys, m * self.base + n)

    def prior(self, tension: float, p_null: float) -> np.ndarray:
        """p(a_j = i) of every row: exp(λ feature) / Z, Z scaled so that NULL keeps p_null."""
        z = _z(self.j, self.m, self.n, tension) / (1.0 - p_null)
        return np.exp(_feature(self.j, self.i, self.m, self.n) * tension) / z


class _Scores(NamedTuple):
    """One chunk's unnormalised alignment scores: per cell p(f | e_i) p(i | j), per token NULL's;
    with each cell's row in the shape tables."""

    tokens: slice
    n: np.ndarray
    row: np.ndarray
    cell: np.ndarray
    null: np.ndarray


def _train_and_align(d: _Direction, settings: Settings) -> Alignment:
    """EM for all iterations but the last, which only reads off the Viterbi links (as the reference)."""
    t = np.full(len(d.pair_e), _UNINITIALISED_PROB)
    tension = settings.tension
    n_tokens = len(d.j)
    for iteration in range(settings.iterations - 1):
        counts, feature = _expected_counts(d, t, tension, settings.p_null)
        if iteration > 0:
            tension = _fit_tension(d.shapes, feature / n_tokens, tension, n_tokens)
        t = _normalise_vb(counts, d.pair_e, settings.alpha)
    return Alignment(_viterbi(d, t, tension, settings.p_null), tension)


def _scores(d: _Direction, c: int, t: np.ndarray, prior: np.ndarray, p_null: float) -> _Scores:
    """Cells' rows are per-token bases plus 0..n-1 (np.repeat, not a gather: faster)."""
    tokens = slice(d.bounds[c], d.bounds[c + 1])
    n = d.n[tokens]
    row = np.arange(int(n.sum())) + np.repeat(d.cell_base[tokens] - _starts(n), n)
    return _Scores(tokens, n, row, t[d.pairs[c]] * prior[row], t[d.null_pair[tokens]] * p_null)


def _expected_counts(d: _Direction, t: np.ndarray, tension: float, p_null: float) -> tuple[np.ndarray, float]:
    """E-step: posterior link counts per word pair, and the summed expected diagonal feature
    (with the reference's 0-based target position j - 1 here)."""
    counts = np.zeros(len(t))
    feature = 0.0
    prior = d.shapes.prior(tension, p_null)
    feature_j0 = _feature(d.shapes.j - 1, d.shapes.i, d.shapes.m, d.shapes.n)
    for c in range(d.chunks):
        s = _scores(d, c, t, prior, p_null)
        total = s.null + np.add.reduceat(s.cell, _starts(s.n))
        posterior = s.cell / np.repeat(total, s.n)
        counts += np.bincount(d.pairs[c], posterior, minlength=len(t))
        counts += np.bincount(d.null_pair[s.tokens], s.null / total, minlength=len(t))
        feature += float(feature_j0[s.row] @ posterior)
    return counts, feature


def _viterbi(d: _Direction, t: np.ndarray, tension: float, p_null: float) -> np.ndarray:
    """Each token's best source position, first on ties, none unless it beats NULL strictly."""
    rows = []
    prior = d.shapes.prior(tension, p_null)
    for c in range(d.chunks):
        s = _scores(d, c, t, prior, p_null)
        best = np.maximum.reduceat(s.cell, _starts(s.n))
        at_best = np.flatnonzero(s.cell == np.repeat(best, s.n))
        tok = np.repeat(np.arange(len(s.n)), s.n)[at_best]
        at_best = at_best[_run_starts(tok)]  # the first best cell of each token
        linked = best > s.null
        source = d.shapes.i[s.row[at_best]][linked] - 1
        rows.append(np.stack([d.sentence[s.tokens][linked], source, d.j[s.tokens][linked] - 1], axis=1))
    return _sorted_links(np.concatenate(rows) if rows else np.empty((0, 3), np.int64))


def _normalise_vb(counts: np.ndarray, pair_e: np.ndarray, alpha: float) -> np.ndarray:
    """Mean-field update of each e's Dirichlet(α)-smoothed distribution over its co-occurring f."""
    total = np.bincount(pair_e, counts + alpha)
    return np.exp(_digamma(counts + alpha) - _digamma(total)[pair_e])


def _fit_tension(shapes: _Shapes, empirical: float, tension: float, n_tokens: int) -> float:
    """Gradient steps moving the model's expected feature towards the empirical one."""
    j, m, n, sentences = shapes.fit
    for _ in range(_TENSION_STEPS):
        model = float(sentences @ _d_log_z(j, m, n, tension)) / n_tokens
        tension = min(max(tension + (empirical - model) * _TENSION_RATE, _TENSION_RANGE[0]), _TENSION_RANGE[1])
    return tension


def _feature(j: np.ndarray, i: np.ndarray, m: np.ndarray, n: np.ndarray) -> np.ndarray:
    """-|i/n - j/m|: how far source position i is from the diagonal at target position j, as
    -|i·m - j·n| / (n·m) so that positions equally far are exactly equal (see the module doc)."""
    return -np.abs(i * m - j * n) / (n * m)


def _z(j: np.ndarray, m: np.ndarray, n: np.ndarray, tension: float) -> np.ndarray:
    """Z = Σ_i exp(λ feature(j, i)) over i = 1..n in closed form: two geometric series either
    side of the diagonal point j·n/m (the reference's DiagonalAlignment::ComputeZ)."""
    split = j * n / m
    floor = split.astype(np.int64)
    ratio = np.exp(-tension / n)
    num_top = np.mod(n - floor, 1 << 32)  # unsigned in the reference; wraps when floor > n
    top = np.exp(_feature(j, floor + 1, m, n) * tension) * (1.0 - ratio ** num_top) / (1.0 - ratio)
    bottom = np.exp(_feature(j, floor, m, n) * tension) * (1.0 - ratio ** floor) / (1.0 - ratio)
    return bottom + top


def _d_log_z(j: np.ndarray, m: np.ndarray, n: np.ndarray, tension: float) -> np.ndarray:
    """d log Z / dλ as the reference computes it (ComputeDLogZ), Z with m and n swapped included."""
    z = _z(j, n, m, tension)
    floor = (j * n / m).astype(np.int64)
    ratio = np.exp(-tension / n)
    step = -1.0 / n
    top = _weighted_series(_feature(j, floor + 1, m, n), tension, ratio, step, n - floor)
    bottom = _weighted_series(_feature(j, floor, m, n), tension, ratio, step, floor)
    return (top + bottom) / z


def _weighted_series(first: np.ndarray, tension: float, ratio: np.ndarray, step: np.ndarray, terms: np.ndarray) -> np.ndarray:
    """Σ_k a_k g_k over ``terms`` terms with a_k arithmetic (a_1 = first feature, difference
    ``step``) and g_k geometric (g_1 = exp(λ a_1), ratio ``ratio``); 0 for no term."""
    g1 = np.exp(first * tension)
    g_after = g1 * ratio ** terms
    a_last = step * (terms - 1) + first
    r1 = ratio - 1.0
    value = (a_last * g_after - first * g1) / r1 - step * (g_after - g1 * ratio) / (r1 * r1)
    return np.where(terms > 0, value, 0.0)


def _digamma(x: np.ndarray) -> np.ndarray:
    """ψ(x) for x > 0 as the reference computes it: shift x up past 7 with ψ(x) = ψ(x+1) - 1/x,
    then the asymptotic series around x - 1/2 (kept so the probabilities match the binary's)."""
    x = np.array(x, dtype=np.float64)
    result = np.zeros_like(x)
    small = x < 7
    while small.any():  # at most 7 rounds for x > 0
        result -= np.divide(1.0, x, out=np.zeros_like(x), where=small)
        x += small
        small = x < 7
    x -= 1.0 / 2.0
    xx = 1.0 / x
    xx2 = xx * xx
    xx4 = xx2 * xx2
    return result + (np.log(x) + (1.0 / 24.0) * xx2 - (7.0 / 960.0) * xx4 + (31.0 / 8064.0) * xx4 * xx2 - (127.0 / 30720.0) * xx4 * xx4)


def _positions(lengths: np.ndarray) -> np.ndarray:
    """1, 2, ..., length for each of these lengths, concatenated."""
    return np.arange(int(lengths.sum())) - np.repeat(_starts(lengths), lengths) + 1


def _starts(lengths: np.ndarray) -> np.ndarray:
    """Where each of consecutive runs of these lengths starts."""
    return np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)


def _sorted_links(rows: np.ndarray) -> np.ndarray:
    """Links as int32 rows sorted by sentence, source position, target position."""
    rows = np.asarray(rows, dtype=np.int32).reshape(-1, 3)
    return rows[np.lexsort((rows[:, 2], rows[:, 1], rows[:, 0]))]
