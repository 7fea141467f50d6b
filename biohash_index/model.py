"""The BioHash model: a sparse expansive layer learned with the Krotov-Hopfield rule.

``BioHashModel`` owns the hyperparameters (``BioHashParams``), the learned state
(``mean_``, ``weights_``, ``train_stats_``) and the two operations on it: ``train`` and
``encode``. It knows nothing of ids or storage; ``BioHashIndex`` builds on it.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterable

import numba
import numpy as np

from .encoding_kernels import top_k_codes
from .learning_kernels import learn_batch, p_power
from .progress import progress
from .threads import blas_limit
from .validation import INT64_MAX, check_positive_int, check_real

log = logging.getLogger(__name__)

ENCODE_BYTES = 1 << 20  # the (rows, m) float32 block of inputs stays in cache for the selection
INITS = ("sample", "gaussian", "orthogonal")
SCORINGS = ("hamming", "asymmetric")
WORK_BUDGET = 3e11  # multiply-adds of the products of a whole training run (auto_epochs)
MIN_FACTOR = 1e-2  # Hebbian factors below this are left out of the rule (see BioHashParams)


def encode_block_rows(n_hidden: int) -> int:
    """Rows projected at once when encoding: about ENCODE_BYTES of float32 inputs."""
    return max(64, ENCODE_BYTES // (4 * n_hidden))


@dataclass(frozen=True)
class BioHashParams:
    """Hyperparameters of a BioHash model, validated once at construction.

    d: input dimension; hash_length: k, the number of active units per code;
    n_hidden: m, the number of hidden units (m > k); p: the Lebesgue norm of the rule
    (>= 1); spread: the Hebbian term moves each sample's top units, the unit at rank
    r = 1..k with factor exp(-(r - 1) / (spread * k)) where that is >= MIN_FACTOR (0: only
    the top unit, the rule of Krotov & Hopfield); delta: strength of the anti-Hebbian push
    on the unit at ``rank``; rank: r >= 2;
    epochs: passes of the plasticity rule over the training set (None: chosen from m and
    n, see ``auto_epochs``; 0: none, the weights keep their initial values and training
    learns the mean only);
    batch_size, learning_rate (initial, annealed linearly to 0), seed; init: "sample"
    (weights start at random training vectors, on the unit p-sphere) or "gaussian"
    (standard normal weights, as in Krotov & Hopfield's code); center: subtract the
    training mean from every input.

    The field defaults are those of ``BioHashIndex(task="labels")``; ``index.TASKS`` holds
    each task's, and the README says how they were chosen.
    """

    d: int
    hash_length: int
    n_hidden: int
    p: float = 1.5
    spread: float = 0.03
    delta: float = 0.0
    rank: int = 2
    epochs: int | None = None
    batch_size: int = 200
    learning_rate: float = 0.04
    seed: int = 0
    init: str = "sample"
    center: bool = False
    scoring: str = "hamming"

    def __post_init__(self):
        check_positive_int(self.d, "d", maximum=INT64_MAX)  # every int is saved as an int64
        k = check_positive_int(self.hash_length, "hash_length", maximum=INT64_MAX)
        m = check_positive_int(self.n_hidden, "n_hidden", maximum=INT64_MAX)
        if k >= m:
            raise ValueError(f"hash_length ({k}) must be smaller than n_hidden ({m})")
        check_real(self.p, "p", low=1.0)
        check_real(self.spread, "spread", low=0.0)
        check_real(self.delta, "delta", low=0.0)
        r = check_positive_int(self.rank, "rank", minimum=2, maximum=INT64_MAX)
        if r > m:
            raise ValueError(f"rank ({r}) must be <= n_hidden ({m})")
        if self.epochs is not None:
            check_positive_int(self.epochs, "epochs", minimum=0, maximum=INT64_MAX)
        check_positive_int(self.batch_size, "batch_size", maximum=INT64_MAX)
        check_real(self.learning_rate, "learning_rate", low=0.0, low_inclusive=False)
        check_positive_int(self.seed, "seed", minimum=0, maximum=INT64_MAX)
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if not isinstance(self.center, (bool, np.bool_)):
            raise TypeError(f"center must be a bool, got {type(self.center).__name__}")
        if self.scoring not in SCORINGS:
            raise ValueError(f"scoring must be one of {SCORINGS}, got {self.scoring!r}")

    @property
    def code_size(self) -> int:
        """Bytes per code: one bit per hidden unit, rounded up to whole bytes."""
        return (self.n_hidden + 7) // 8

    def rank_factors(self) -> np.ndarray:
        """g: float64 (R,), the factor of the rule for the unit at each rank (best first)."""
        s = self.spread * self.hash_length
        n_hebb = min(self.hash_length, 1 + int(s * math.log(1 / MIN_FACTOR)))
        g = np.zeros(max(n_hebb, self.rank if self.delta > 0 else 1))
        g[:n_hebb] = np.exp(-np.arange(n_hebb) / s) if s > 0 else 1.0
        if self.delta > 0:
            g[self.rank - 1] -= self.delta
        return g

    def replace(self, **changes) -> "BioHashParams":
        return dataclasses.replace(self, **changes)


def auto_epochs(n_hidden: int, n_train: int, d: int) -> int:
    """Epochs so that every hidden unit can expect ~200 wins and every run has >= 20 epochs,
    at most 400 and at most what WORK_BUDGET allows (>= 1): a run's products cost
    n_train * n_hidden * d multiply-adds per epoch (a few seconds for the budget on 2 cores)."""
    epochs = int(min(400, max(20, math.ceil(200 * n_hidden / max(n_train, 1)))))
    budget = max(1, int(WORK_BUDGET // (max(n_train, 1) * n_hidden * d)))
    if budget < epochs:
        log.info("training for %d epochs instead of %d: the work budget (%.0e multiply-adds) "
                 "caps it at %d vectors x %d units x d=%d", budget, epochs, WORK_BUDGET,
                 n_train, n_hidden, d)
    return min(epochs, budget)


def orthonormal_rows(m: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """float32 (m, d): blocks of up to d random orthonormal rows (a random rotation each),
    so units within a block cut the space in independent directions."""
    blocks = []
    for s in range(0, m, d):
        q, r = np.linalg.qr(rng.standard_normal((d, d)))
        q *= np.sign(np.diag(r))  # uniformly distributed rotations (Mezzadri 2007)
        blocks.append(q.T[:min(d, m - s)])
    return np.concatenate(blocks).astype(np.float32)


def p_weights(W: np.ndarray, p: float) -> np.ndarray:
    """sign(W) |W|^(p-1): the matrix whose product with x gives <W_mu, x>_p (W itself at p=2)."""
    if p == 2.0:
        return W
    out = np.empty_like(W)
    p_power(W, p, out)
    return out


def p_normalize(W: np.ndarray, p: float) -> np.ndarray:
    """Rows of W scaled to unit p-norm (zero rows left as they are)."""
    norms = np.sum(np.abs(W.astype(np.float64)) ** p, axis=1) ** (1.0 / p)
    norms[norms == 0] = 1.0
    return (W / norms[:, None]).astype(np.float32)


class RowSample:
    """A uniform random sample of at most n_max rows of blocks seen one at a time: every row
    gets a random key and the rows with the smallest keys are kept (memory n_max + a block)."""

    def __init__(self, n_max: int, d: int):
        self.n_max = n_max
        self.keys = np.zeros(0)
        self.rows = np.zeros((0, d), np.float32)

    def add(self, xb: np.ndarray, rng: np.random.Generator) -> None:
        keys = np.concatenate([self.keys, rng.random(len(xb))])
        rows = np.concatenate([self.rows, xb])
        keep = np.argsort(keys, kind="stable")[:self.n_max]
        self.keys, self.rows = keys[keep], rows[keep]


class BioHashModel:
    """Learned sparse expansive layer: ``train`` on float32 (n, d), ``encode`` to uint8 codes."""

    def __init__(self, params: BioHashParams):
        self.params = params
        self.mean_: np.ndarray | None = None
        self.weights_: np.ndarray | None = None
        self.train_stats_: dict[str, np.ndarray] = {}
        self._proj = None  # (W_p, mean @ W_p.T or None if the mean is 0), from the learned state

    @property
    def is_trained(self) -> bool:
        return self.weights_ is not None

    # ---------------------------------------------------------------- training
    def train(self, x: np.ndarray) -> "BioHashModel":
        """Learn mean and weights from float32 (n, d) training vectors (already validated)."""
        return self.train_blocks(lambda: (x,))

    def train_blocks(self, blocks: Callable[[], Iterable[np.ndarray]]) -> "BioHashModel":
        """Learn from data that comes in blocks: ``blocks()`` starts a new pass over the
        training set and yields validated float32 (n_i, d) arrays.

        Memory is bounded by the largest block: one pass finds the mean and the initial
        weights, then each epoch is one pass, shuffling rows within each block (a single
        block, as ``train`` gives, is a full shuffle).
        """
        prm = self.params
        rng = np.random.default_rng(prm.seed)
        n, mean, sample = self._first_pass(blocks, rng)
        if n == 0:
            raise ValueError("the training data holds no vectors")
        W = self._init_weights(self._prepare(sample, mean), rng)
        epochs = auto_epochs(prm.n_hidden, n, prm.d) if prm.epochs is None else prm.epochs
        win_frac = np.zeros(epochs, np.float64)
        norm_err = np.zeros(epochs, np.float64)
        for ep in progress(range(epochs), "training", "epoch"):
            lr = prm.learning_rate * (1.0 - ep / epochs)
            win_frac[ep] = self._run_epoch(W, self._batches(blocks, mean, rng), lr, n)
            norms = np.einsum("ij,ij->i", W, p_weights(W, prm.p), dtype=np.float64)  # |W|^p
            norm_err[ep] = np.abs(norms ** (1 / prm.p) - 1.0).max()
        log.info("trained %d epochs on %d vectors; units that won in the last epoch: %s",
                 epochs, n, f"{100 * win_frac[-1]:.1f}%" if epochs else "-")
        self.mean_, self.weights_ = mean, W
        self.train_stats_ = {"won_fraction": win_frac, "max_norm_error": norm_err}
        self._proj = None
        return self

    def _first_pass(self, blocks, rng):
        """Count, mean and a uniform sample of up to n_hidden rows (smallest random keys)."""
        prm = self.params
        n, total = 0, np.zeros(prm.d, np.float64)
        sample = RowSample(prm.n_hidden, prm.d)
        for xb in blocks():
            n += len(xb)
            total += xb.sum(axis=0, dtype=np.float64)
            if prm.init == "sample":
                sample.add(xb, rng)
        mean = (total / max(n, 1)).astype(np.float32) if prm.center else np.zeros(prm.d, np.float32)
        return n, mean, sample.rows

    def _batches(self, blocks, mean, rng):
        """Mini-batches of one epoch: prepared rows, shuffled within each block."""
        for xb in blocks():
            xb = self._prepare(xb, mean)[rng.permutation(len(xb))]
            for s in range(0, len(xb), self.params.batch_size):
                yield xb[s:s + self.params.batch_size]

    def _prepare(self, x: np.ndarray, mean: np.ndarray) -> np.ndarray:
        """Training vectors (centred if ``center``) scaled to unit L2 norm, so each sample
        weighs the same.

        Scaling a vector does not change which units rank highest, so codes are unaffected.
        Each row is first scaled by a power of two that brings its largest value into
        [0.5, 1): exact, so the result is the same as without it, but the float32 norm
        neither overflows (values near 1e19) nor underflows (near 1e-30).
        """
        xt = x - mean
        _, exp = np.frexp(np.abs(xt).max(axis=1, keepdims=True))
        np.ldexp(xt, -exp, out=xt)
        norms = np.linalg.norm(xt, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return (xt / norms).astype(np.float32)

    def _init_weights(self, sample: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Initial (m, d) weights: prepared training rows plus a little noise (repeated if
        fewer rows than units), standard normal, or orthonormal in blocks of d rows."""
        prm = self.params
        m = prm.n_hidden
        if prm.init == "sample":
            W = sample[np.arange(m) % len(sample)] + 0.01 * rng.standard_normal(
                (m, prm.d)).astype(np.float32)
            return p_normalize(W, prm.p)
        if prm.init == "orthogonal":
            return p_normalize(orthonormal_rows(m, prm.d, rng), prm.p)
        return rng.standard_normal((m, prm.d)).astype(np.float32)  # as Krotov & Hopfield

    def _run_epoch(self, W: np.ndarray, batches: Iterable[np.ndarray], lr: float,
                   n: int) -> float:
        """One pass of the plasticity rule over ``batches`` of n vectors in all; returns the
        fraction of units that won."""
        prm = self.params
        won = np.zeros(prm.n_hidden, bool)
        g = prm.rank_factors()
        Wp = p_weights(W, prm.p)  # W itself for p = 2; else kept in step with W, row by row
        rows = min(prm.batch_size, n)  # no batch is larger
        buf = np.empty((rows, prm.n_hidden), np.float32)  # reused: no page faults
        for xb in batches:
            tot = np.matmul(xb, Wp.T, out=buf[:len(xb)])
            learn_batch(W, Wp, xb, tot, g, prm.p, lr, won)
        return float(won.mean())

    # ---------------------------------------------------------------- encoding
    def encode(self, x: np.ndarray) -> np.ndarray:
        """Codes of float32 (n, d) vectors: uint8 (n, code_size), exactly k bits set per row.

        Blocks of about ENCODE_BYTES of products are encoded whole (product, then selection)
        by numba's number of threads, each with one BLAS thread (a process-wide setting while
        they run): two thread pools taking turns on every block (BLAS's and OpenMP's) can
        cost ten times as much where OpenMP threads spin while they wait.
        """
        if not self.is_trained:
            raise RuntimeError("the model is not trained: call train() first")
        Wp, bias = self._projection()
        prm = self.params
        out = np.empty((len(x), prm.code_size), np.uint8)
        rows = encode_block_rows(prm.n_hidden)
        scratch = threading.local()

        def encode_block(s):
            tot = getattr(scratch, "tot", None)
            if tot is None:
                tot = scratch.tot = np.empty((min(rows, len(x)), prm.n_hidden), np.float32)
            xs = x[s:s + rows]
            np.matmul(xs, Wp.T, out=tot[:len(xs)])
            out[s:s + rows] = top_k_codes(tot[:len(xs)], prm.hash_length, prm.code_size, bias)

        starts = range(0, len(x), rows)
        n_workers = min(numba.get_num_threads(), len(starts))
        if n_workers <= 1:
            for s in progress(starts, "encoding", "block"):
                encode_block(s)
            return out
        with blas_limit(1), ThreadPoolExecutor(n_workers) as pool:
            for _ in progress(pool.map(encode_block, starts), "encoding", "block", len(starts)):
                pass
        return out

    def encode_queries(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Codes uint8 (n, code_size) and unit inputs float32 (n, m) of float32 (n, d)
        queries, for asymmetric scoring (``scoring.py``)."""
        if not self.is_trained:
            raise RuntimeError("the model is not trained: call train() first")
        Wp, bias = self._projection()
        acts = x @ Wp.T
        if bias is not None:
            acts -= bias
        return top_k_codes(acts, self.params.hash_length, self.params.code_size), acts

    def _projection(self):
        if self._proj is None:
            Wp = np.ascontiguousarray(p_weights(self.weights_, self.params.p))
            bias = (self.mean_ @ Wp.T).astype(np.float32) if self.mean_.any() else None
            self._proj = (Wp, bias)  # no bias: the selection reads the products in place
        return self._proj
