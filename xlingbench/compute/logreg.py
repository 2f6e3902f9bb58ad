"""Batched L2 logistic regression in torch: many binary problems over shared rows, solved together.

Why: task 1 fits one problem per (category, fold): about 300 fits for a 250k-token vocabulary.
scikit-learn fits them one at a time, and each pass of its L-BFGS over the rows is a
matrix-vector product, bound by memory traffic. Here the folds of one category share their rows,
so one pass is a matrix-matrix product serving all of them, and every category advances in the
same truncated-Newton loop (on CPU or GPU).

Each problem is scikit-learn's ``LogisticRegression()`` with its defaults (C=1, intercept not
penalised)::

    f(w, b) = sum_i m_i * log(1 + exp(-s_i * (x_i . w + b))) + 0.5 * ||w||^2

with ``m_i`` = 1 for the problem's training rows and ``s_i`` = +-1 the target. scikit-learn
minimises ``f / sum(m)``: the same optimum. ``f`` is strictly convex, so there is one optimum and
any solver converged on the gradient reaches it; scikit-learn's lbfgs stops at ``max_iter=100``
or a loose gradient (``tol=1e-4`` on the scaled objective), this solver goes on until
``max|grad f| <= tol * sum(m)``. The default ``tol=1e-6`` moves e5-small's task 1 accuracies by
under 5e-6 from those at ``1e-10`` for about a quarter less work; ``tol=1e-10`` reaches a tightly
converged scikit-learn's coefficients to 1e-7 (tests/test_logreg.py).

Method: Newton steps, the Newton system solved by preconditioned conjugate gradients with
Hessian-vector products (never forming a Hessian), stopped at a relative residual
``min(0.5, (scaled |grad|) ** 0.25)`` (superlinear convergence; looser than the usual square root,
which on e5-small saves more CG passes than its one extra Newton step costs), then an Armijo
backtracking step along the direction, doubled while the loss falls. Passes over the rows are what cost, so
everything else serves to need few, and cheap ones:

- Rows are centred per block: ``x.w + b = (x - mu).w + (b + mu.w)`` leaves the penalty, hence
  the optimum, unchanged, and removes the common direction that embedding rows share.
- The Hessian ``X' D X + I`` of every problem of a block shares its rows ``X``, whose Gram
  ``X' X`` is decomposed once per block (``U diag(l) U'``). ``c X' X + I``, with ``c`` the
  problem's mean Hessian weight per row, is then inverted by two small products per CG
  iteration; it removes the anisotropy of the embedding space (the rest is the spread of the
  weights ``D``), so CG needs a few iterations where it needed dozens.
- Hessian products run over float32 rows (an inexact Hessian only makes a step inexact); the
  gradient and margins too unless ``tol`` is below what float32 sums can certify
  (``FLOAT32_TOLERANCE``), then over float64 rows.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from xlingbench.compute.threads import side_by_side

Vectors = torch.Tensor  # (blocks, problems per block, dim + 1): weights then intercept
TOLERANCE = 1e-6  # default stop: max|grad f| per training row (scikit-learn's lbfgs stops at 1e-4)
FLOAT32_TOLERANCE = 1e-7  # the tightest stop that passes over float32 rows can certify; below it, float64
# On CPU a fit runs on one thread. Its passes are matrix products with ten columns, bound by memory
# traffic that a second thread barely raises, and its hundreds of small element-wise steps would
# each wait at a barrier for a thread the OS has descheduled: on a loaded 2-core box the fit took
# 12 s on one thread and 19-44 s on two (e5-small, paper labels).
CPU_THREADS = 1
#: float32 bytes of :class:`ScaledRows` converted at once in a pass (909 rows at Gemma-2-2B's width,
#: 511 at an 8B model's): small enough to stay in cache between the conversion and the product; of
#: 256-2048 rows a chunk, about this size was the fastest pass at both widths (10% faster than 1,024
#: rows at 8B; the whole probe, where passes are not all the work, took 315 s either way)
PASS_BYTES = 8 << 20
#: On CPU the blocks of one call are shared out among up to this many fits side by side, one thread
#: each, as many as torch has threads (:func:`_shares`): the other cores do the work a second intra-op
#: thread could not. The problems are independent, so the sharing changes the time, never a number.
PARALLEL_FITS = 8


@dataclass(frozen=True)
class ScaledRows:
    """A block's rows as the matrix holds them (bfloat16, float16), with the norm each row is divided
    by and the block's mean: a pass reads ``raw / norm - mean``, then 1 (the intercept), converted a
    chunk of :data:`PASS_BYTES` at a time into one float32 buffer.

    Why: the fit's float32 copy of a bfloat16 model's Latin sample (half its vocabulary, balanced:
    all of it) is twice the model's matrix; this is one copy in the model's own dtype. Widening is
    exact and a chunk is divided as :func:`xlingbench.compute.rows.unit_rows` divides, so it holds
    the unit rows a float32 block would; converting them again on every pass made a pass about
    1.3x as long at Gemma-2-2B's shape (one thread).
    """

    raw: torch.Tensor  # (n, dim) in the matrix's dtype
    norms: torch.Tensor  # (n, 1) float32: what each row is divided by
    mean: torch.Tensor  # (dim,) float32: the mean of the unit rows, taken off every row
    dtype: torch.dtype = torch.float32  # of the chunks handed to the products (float64 below FLOAT32_TOLERANCE)

    def __len__(self) -> int:
        return len(self.raw)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.raw), self.raw.shape[1] + 1

    @property
    def device(self) -> torch.device:
        return self.raw.device

    def to(self, device: str, dtype: torch.dtype) -> ScaledRows:
        return ScaledRows(self.raw.to(device), self.norms.to(device), self.mean.to(device), dtype)

    def float(self) -> ScaledRows:
        return ScaledRows(self.raw, self.norms, self.mean, torch.float32)

    def every(self, step: int) -> ScaledRows:
        """Every ``step``-th row (views, no copy)."""
        return ScaledRows(self.raw[::step], self.norms[::step], self.mean, self.dtype)

    def chunks(self) -> Iterator[tuple[slice, torch.Tensor]]:
        """``(rows, their values with the intercept's 1)`` chunk by chunk; the buffer is reused, so
        each chunk is to be used before the next is asked for."""
        per_chunk = max(1, PASS_BYTES // (4 * self.shape[1]))
        buffer = torch.ones(min(per_chunk, len(self)), self.shape[1], device=self.device)
        for start in range(0, len(self), per_chunk):
            rows = slice(start, min(start + per_chunk, len(self)))
            chunk = buffer[: rows.stop - start]
            values = chunk[:, :-1]
            values.copy_(self.raw[rows]).div_(self.norms[rows]).sub_(self.mean)
            yield rows, chunk.to(self.dtype)

    def times(self, vectors: torch.Tensor) -> torch.Tensor:
        """``(n, problems)``: each row dotted with each of ``vectors`` (problems, dim + 1)."""
        out = torch.empty(len(self), len(vectors), dtype=self.dtype, device=self.device)
        columns = vectors.T.to(self.dtype)
        for rows, chunk in self.chunks():
            torch.matmul(chunk, columns, out=out[rows])
        return out

    def transpose_times(self, residuals: torch.Tensor) -> torch.Tensor:
        """``(problems, dim + 1)`` float64: ``sum_i r_i * row_i``, the chunks' sums added in float64."""
        total = torch.zeros(residuals.shape[1], self.shape[1], dtype=torch.float64, device=self.device)
        for rows, chunk in self.chunks():
            total += (residuals[rows].to(self.dtype).T @ chunk).double()
        return total


def scaled_block(raw: torch.Tensor, norms: np.ndarray, targets: np.ndarray, train: np.ndarray) -> Block:
    """A block over :class:`ScaledRows`: ``raw`` rows (any dtype), divided by ``norms`` and centred as
    a pass reads them; the mean of the unit rows is summed chunk by chunk in float64."""
    rows = ScaledRows(raw, torch.from_numpy(norms), torch.zeros(raw.shape[1]))
    total = torch.zeros(raw.shape[1], dtype=torch.float64)
    for _, chunk in rows.chunks():
        total += chunk[:, :-1].sum(0, dtype=torch.float64)
    mean = (total / max(len(raw), 1)).float()
    return Block(ScaledRows(raw, rows.norms, mean), targets, train, mean.numpy())


@dataclass(frozen=True)
class Block:
    """Rows shared by several problems: the problems differ only in their training rows."""

    rows: np.ndarray | ScaledRows  # (n, dim); or, when ``mean`` is given, (n, dim + 1): centred rows then 1
    targets: np.ndarray  # (n,) bool: the positive class
    train: np.ndarray  # (n, problems) bool: row i is a training row of problem j
    mean: np.ndarray | None = None  # (dim,) the mean taken off ``rows`` by :func:`centred_block`

    @property
    def dim(self) -> int:
        return self.rows.shape[1] - (self.mean is not None)


def intercept_rows(n: int, dim: int) -> np.ndarray:
    """An ``(n, dim + 1)`` float32 buffer whose last column is 1: write rows into ``[:, :dim]``,
    then :func:`centred_block` centres them in place, so a block costs one copy of its rows."""
    rows = np.empty((n, dim + 1), dtype=np.float32)
    rows[:, -1] = 1
    return rows


def centred_block(rows: np.ndarray, targets: np.ndarray, train: np.ndarray) -> Block:
    """A block over an :func:`intercept_rows` buffer, its rows centred in place (as the fit would centre
    a copy: the same float32 mean, the same numbers)."""
    values = torch.from_numpy(rows)[:, :-1]
    mean = values.mean(0)
    values.sub_(mean)
    return Block(rows, targets, train, mean.numpy())


@dataclass(frozen=True)
class Fit:
    """The optimum of every problem, in the original (uncentred) coordinates."""

    coef: np.ndarray  # (blocks, problems, dim)
    intercept: np.ndarray  # (blocks, problems)
    margins: list[np.ndarray]  # per block (n, problems): x_i . w + b at the optimum
    converged: np.ndarray  # (blocks, problems) bool
    iterations: int  # Newton steps taken (the slowest problem's)


def fit_logistic(
    blocks: Sequence[Block], *, tol: float = TOLERANCE, max_iter: int = 100, max_cg: int = 250, device: str = "cpu"
) -> Fit:
    """Fit every problem of every block to ``max|grad f| <= tol * training rows`` (see module doc).

    Two problems over four separable rows (the second trains on the first three only); every
    margin has its row's sign:

    >>> rows = np.array([[-2.0], [-1.0], [1.0], [2.0]], dtype=np.float32)
    >>> train = np.array([[True, True], [True, True], [True, True], [True, False]])
    >>> fit = fit_logistic([Block(rows, np.array([False, False, True, True]), train)])
    >>> bool(fit.converged.all()), bool((np.sign(fit.margins[0]) == [[-1], [-1], [1], [1]]).all())
    (True, True)
    """
    _check(blocks)
    dtype = torch.float64 if tol < FLOAT32_TOLERANCE else torch.float32
    shares = _shares(blocks, torch.get_num_threads() if torch.device(device).type == "cpu" else 1)
    fits = side_by_side([partial(_fit_share, [blocks[i] for i in share], dtype, tol, max_iter, max_cg, device)
                         for share in shares], threads_each=CPU_THREADS)
    return _joined(fits, shares)


def _check(blocks: Sequence[Block]) -> None:
    """Blocks that can be fitted together: some, of one width and problem count, rows matching targets and train."""
    if not blocks:
        raise ValueError("no blocks to fit")
    shapes = {(b.dim, b.train.shape[1]) for b in blocks}
    if len(shapes) != 1 or any(len(b.rows) != len(b.targets) or len(b.rows) != len(b.train) for b in blocks):
        raise ValueError(f"blocks must agree on width and problem count, and rows with targets and train: {shapes}")


def _fit_share(blocks: Sequence[Block], dtype: torch.dtype, tol: float, max_iter: int, max_cg: int, device: str) -> Fit:
    """One share of the blocks fitted in one Newton loop (on one CPU thread)."""
    with _cpu_threads(device, CPU_THREADS):
        return _newton(_Data.of(blocks, device, dtype), tol, max_iter, max_cg, device)


def _shares(blocks: Sequence[Block], workers: int) -> list[list[int]]:
    """The blocks' indices dealt into at most ``workers`` (and :data:`PARALLEL_FITS`) shares of about
    equal rows, largest block first to the lightest share; no share is empty.

    >>> rows = lambda n: Block(np.zeros((n, 1), np.float32), np.zeros(n, bool), np.ones((n, 1), bool))
    >>> _shares([rows(5), rows(9), rows(3), rows(4)], workers=2)
    [[1, 2], [0, 3]]
    """
    count = max(1, min(workers, PARALLEL_FITS, len(blocks)))
    shares: list[list[int]] = [[] for _ in range(count)]
    load = [0] * count
    for i in sorted(range(len(blocks)), key=lambda i: -len(blocks[i].rows)):
        lightest = load.index(min(load))
        shares[lightest].append(i)
        load[lightest] += len(blocks[i].rows)
    return [sorted(share) for share in shares]


def _joined(fits: Sequence[Fit], shares: Sequence[Sequence[int]]) -> Fit:
    """The fits of the shares put back in the blocks' order (iterations: the slowest share's)."""
    where = {block: (s, j) for s, share in enumerate(shares) for j, block in enumerate(share)}
    order = [where[b] for b in range(len(where))]
    return Fit(np.stack([fits[s].coef[j] for s, j in order]), np.stack([fits[s].intercept[j] for s, j in order]),
               [fits[s].margins[j] for s, j in order], np.stack([fits[s].converged[j] for s, j in order]),
               max(f.iterations for f in fits))


@contextmanager
def _cpu_threads(device: str, threads: int) -> Iterator[None]:
    """torch's intra-op threads set to ``threads`` for a fit on the CPU, restored after."""
    before = torch.get_num_threads()
    if torch.device(device).type == "cpu":
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _newton(data: _Data, tol: float, max_iter: int, max_cg: int, device: str) -> Fit:
    """The truncated-Newton loop of the module doc, from zero."""
    params = torch.zeros(len(data.rows), data.problems, data.dim + 1, dtype=torch.float64, device=device)
    margins = [torch.zeros(m.shape, dtype=torch.float64, device=device) for m in data.train]
    converged = torch.zeros(params.shape[:2], dtype=torch.bool, device=device)
    iterations = 0
    for iterations in range(max_iter + 1):
        grad = data.gradient(params, margins, ~converged)
        scaled = grad.abs().amax(-1) / data.train_rows
        converged = converged | (scaled <= tol)  # a converged problem takes no more steps, nor passes
        if bool(converged.all()) or iterations == max_iter:
            break
        weights = [_hessian_weights(m, z) for m, z in zip(data.train, margins)]
        forcing = torch.clamp(scaled ** 0.25, max=0.5)
        step = _conjugate_gradients(partial(data.hessian_times, weights=weights), data.preconditioner(weights),
                                    grad, forcing, ~converged, max_cg)
        del weights  # n x problems each: not held through the line search
        params, margins = _line_search(data, params, margins, grad, step)
    coef, intercept = data.uncentre(params)
    return Fit(coef.cpu().numpy(), intercept.cpu().numpy(), [z.cpu().numpy() for z in margins],
               converged.cpu().numpy(), iterations)


@dataclass
class _Data:
    """The blocks on the device, centred, with the passes over rows the solver needs."""

    rows: list[torch.Tensor | ScaledRows]  # (n, dim + 1): centred rows then 1 (the intercept); gradients and margins
    rows32: list[torch.Tensor | ScaledRows]  # the same in float32: Hessian products, which only steer the step
    means: torch.Tensor  # (blocks, dim), float64
    signs: list[torch.Tensor]  # (n, 1): +1 positive, -1 negative
    targets: list[torch.Tensor]  # (n, 1): 1.0 positive, 0.0 negative
    train: list[torch.Tensor]  # (n, problems): 1.0 training row (float32: half the bytes, the same products)
    train_rows: torch.Tensor  # (blocks, problems)
    basis: torch.Tensor  # (blocks, dim, dim): eigenvectors of each block's Gram X' X
    spectrum: torch.Tensor  # (blocks, dim): its eigenvalues per row

    @classmethod
    def of(cls, blocks: Sequence[Block], device: str, dtype: torch.dtype) -> _Data:
        rows, means = zip(*(_prepared(b, device, dtype) for b in blocks))
        rows32 = [x.float() for x in rows]
        spectrum, basis = torch.linalg.eigh(torch.stack([_covariance(x) for x in rows32]))
        targets = [torch.as_tensor(b.targets, device=device).to(torch.float64)[:, None] for b in blocks]
        train = [torch.as_tensor(b.train, device=device).to(torch.float32) for b in blocks]  # 0/1: exact, promoted in float64 products
        return cls(list(rows), rows32, torch.stack(means), [2 * t - 1 for t in targets], targets, train,
                   torch.stack([t.sum(0) for t in train]).clamp(min=1), basis, spectrum)

    @property
    def problems(self) -> int:
        return self.train[0].shape[1]

    @property
    def dim(self) -> int:
        return self.rows[0].shape[1] - 1

    def times(self, vectors: Vectors, rows: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """Per block (n, problems): each row dotted with each problem's vector, plus its intercept.

        A block whose vectors are all zero (its problems are done) costs no pass: zeros.
        """
        rows = self.rows if rows is None else rows
        busy = vectors.ne(0).flatten(1).any(1).tolist()
        return [_times(x, v) if b else torch.zeros(len(x), len(v), dtype=x.dtype, device=x.device)
                for x, v, b in zip(rows, vectors, busy)]

    def transpose_times(self, residuals: list[torch.Tensor], rows: list[torch.Tensor] | None = None,
                        busy: list[bool] | None = None) -> Vectors:
        """Per problem: sum_i r_i * (x_i, 1), the adjoint of :meth:`times` (float64); blocks not ``busy`` cost no pass."""
        rows = self.rows if rows is None else rows
        busy = [True] * len(rows) if busy is None else busy
        return torch.stack([_transpose_times(r, x) if b
                            else torch.zeros(r.shape[1], x.shape[1], dtype=torch.float64, device=x.device)
                            for x, r, b in zip(rows, residuals, busy)])

    def loss(self, params: Vectors, margins: list[torch.Tensor]) -> torch.Tensor:
        """f per problem (blocks, problems)."""
        logloss = torch.stack([torch.nn.functional.softplus(-s * z).mul_(m).sum(0)
                               for m, s, z in zip(self.train, self.signs, margins)])
        return logloss + 0.5 * (params[..., :-1] ** 2).sum(-1)

    def gradient(self, params: Vectors, margins: list[torch.Tensor], wanted: torch.Tensor) -> Vectors:
        """grad f of the ``wanted`` (blocks, problems); the others' rows are zero plus the penalty's."""
        residuals = [torch.sigmoid(z).sub_(t).mul_(m * want) for m, want, z, t in zip(self.train, wanted, margins, self.targets)]
        return self.transpose_times(residuals, busy=wanted.any(1).tolist()) + _penalised(params)

    def hessian_times(self, vectors: Vectors, weights: list[torch.Tensor]) -> Vectors:
        """H v in float32 (``weights`` float32): an inexact Hessian only makes the Newton step inexact."""
        busy = vectors.ne(0).flatten(1).any(1).tolist()
        products = [z.mul_(w) for w, z in zip(weights, self.times(vectors, self.rows32))]
        return self.transpose_times(products, self.rows32, busy) + _penalised(vectors)

    def preconditioner(self, weights: list[torch.Tensor]) -> Callable[[Vectors], Vectors]:
        """v -> M^-1 v, M = c X' X + I on the weights, the Hessian's diagonal on the intercept (module doc)."""
        curvature = torch.stack([w.sum(0) for w in weights]).double()  # (blocks, problems): H's intercept entry
        inverse = 1 / (curvature[..., None] * self.spectrum[:, None, :] + 1)  # c X'X = sum(w) * (X'X / n)

        def solve(vectors: Vectors) -> Vectors:
            coords = torch.bmm(vectors[..., :-1], self.basis) * inverse
            return torch.cat([torch.bmm(coords, self.basis.transpose(1, 2)),
                              vectors[..., -1:] / curvature.clamp(min=1e-12)[..., None]], dim=-1)
        return solve

    def uncentre(self, params: Vectors) -> tuple[torch.Tensor, torch.Tensor]:
        coef = params[..., :-1]
        return coef, params[..., -1] - torch.einsum("kpd,kd->kp", coef, self.means)


def _prepared(block: Block, device: str, dtype: torch.dtype) -> tuple[torch.Tensor | ScaledRows, torch.Tensor]:
    """The block's centred rows with the intercept's column, and their mean (float64), on ``device``."""
    if isinstance(block.rows, ScaledRows):
        return block.rows.to(device, dtype), block.rows.mean.to(device).double()
    if block.mean is None:
        return _with_intercept(torch.as_tensor(block.rows, device=device).to(dtype))
    return torch.as_tensor(block.rows, device=device).to(dtype), torch.as_tensor(block.mean, device=device).double()


def _with_intercept(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x - mean, 1)`` per row, and the mean (float64): the intercept is the last column of every pass."""
    mean = rows.mean(0)
    out = torch.ones(len(rows), rows.shape[1] + 1, dtype=rows.dtype, device=rows.device)
    torch.sub(rows, mean, out=out[:, :-1])
    return out, mean.double()


def _covariance(rows: torch.Tensor | ScaledRows, sample: int = 20_000) -> torch.Tensor:
    """``X' X / n`` (float64) over the centred rows (the intercept's column left out) from at most
    about ``sample`` evenly spaced rows: it only shapes the preconditioner. Over :class:`ScaledRows`
    the chunks' products are added in float64, with no float32 copy of the sample."""
    step = -(-len(rows) // sample)
    if isinstance(rows, ScaledRows):
        some = rows.every(step)
        gram = torch.zeros(some.shape[1] - 1, some.shape[1] - 1, dtype=torch.float64, device=some.device)
        for _, chunk in some.chunks():
            gram += (chunk[:, :-1].T @ chunk[:, :-1]).double()
        return gram / len(some)
    some = rows[::step, :-1]
    return (some.T @ some).double() / len(some)


def _times(rows: torch.Tensor | ScaledRows, vectors: torch.Tensor) -> torch.Tensor:
    """``(n, problems)``: the rows (with the intercept's 1) times each problem's vector."""
    return rows.times(vectors) if isinstance(rows, ScaledRows) else rows @ vectors.T.to(rows.dtype)


def _transpose_times(residuals: torch.Tensor, rows: torch.Tensor | ScaledRows) -> torch.Tensor:
    """``(problems, dim + 1)`` float64: per problem, ``sum_i r_i * (x_i, 1)``."""
    return rows.transpose_times(residuals) if isinstance(rows, ScaledRows) else (residuals.to(rows.dtype).T @ rows).double()


def _hessian_weights(train: torch.Tensor, margins: torch.Tensor) -> torch.Tensor:
    """``m * sigmoid(z) * sigmoid(-z)`` per row and problem, in float32 for the Hessian products; in
    place where the product allows, in the same order (the same numbers): two n x problems float64
    temporaries at a time, not four."""
    weights = torch.sigmoid(margins).mul_(train)
    return weights.mul_(torch.sigmoid(margins.neg())).float()


def _penalised(vectors: Vectors) -> Vectors:
    """The penalty's gradient (and Hessian times ``vectors``): the weights, the intercept not."""
    return torch.cat([vectors[..., :-1], torch.zeros_like(vectors[..., -1:])], dim=-1)


def _dot(a: Vectors, b: Vectors) -> torch.Tensor:
    return (a * b).sum(-1)


def _conjugate_gradients(
    hessian_times: Callable[[Vectors], Vectors], precondition: Callable[[Vectors], Vectors], grad: Vectors,
    forcing: torch.Tensor, active: torch.Tensor, max_cg: int,
) -> Vectors:
    """Approximate Newton steps ``H s = -grad``, each problem stopped at ``|r| <= forcing |grad|``."""
    step = torch.zeros_like(grad)
    residual = -grad
    preconditioned = precondition(residual)
    direction = preconditioned.clone()
    rz, rr = _dot(residual, preconditioned), _dot(residual, residual)
    target = (forcing ** 2) * rr
    live = active & (rr > target)
    for _ in range(max_cg):
        if not bool(live.any()):
            break
        curvature = hessian_times(direction * live[..., None])
        alpha = torch.where(live, rz / _dot(direction, curvature), torch.zeros_like(rz))[..., None]
        step = step + alpha * direction
        residual = residual - alpha * curvature
        preconditioned = precondition(residual)
        rz_next = _dot(residual, preconditioned)
        beta = torch.where(live, rz_next / rz, torch.zeros_like(rz))[..., None]
        direction = preconditioned + beta * direction
        rz = torch.where(live, rz_next, rz)
        live = live & (_dot(residual, residual) > target)
    return step


def _line_search(
    data: _Data, params: Vectors, margins: list[torch.Tensor], grad: Vectors, step: Vectors, halvings: int = 30
) -> tuple[Vectors, list[torch.Tensor]]:
    """Armijo backtracking per problem, and doubling a full step while the loss falls.

    Far from the optimum a Newton step of logistic regression falls short: the curvature it
    assumes fades as the margins grow. Margins move linearly, so trials need no pass over rows.
    """
    along = [a.double() for a in data.times(step)]

    def moved(size: torch.Tensor) -> tuple[Vectors, list[torch.Tensor]]:
        return params + size[..., None] * step, [torch.mul(a, size[k]).add_(z) for k, (z, a) in enumerate(zip(margins, along))]

    start, slope = data.loss(params, margins), _dot(grad, step)
    size = torch.ones_like(start)
    reached = data.loss(*moved(size))
    for _ in range(halvings):
        short = reached > start + 1e-4 * size * slope + 1e-12 * start.abs()  # allow rounding near the optimum
        if not bool(short.any()):
            break
        size = torch.where(short, size / 2, size)
        reached = torch.where(short, data.loss(*moved(size)), reached)
    longer = size == 1
    while bool(longer.any()):
        trial = data.loss(*moved(torch.where(longer, 2 * size, size)))
        longer = longer & (trial < reached - 1e-12 * start.abs())
        size, reached = torch.where(longer, 2 * size, size), torch.where(longer, trial, reached)
    return moved(size)
