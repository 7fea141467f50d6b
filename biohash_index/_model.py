"""The BioHash model: a sparse expansive layer learned with the Krotov-Hopfield rule.

``BioHashParams`` declares every hyperparameter once (constraint, help text, default by
task: ``TASKS``). ``BioHashModel`` owns the hyperparameters, the learned state (``mean_``,
``weights_``, ``train_stats_``) and the two operations on it: ``train`` and ``encode``. It
knows nothing of ids or storage; ``BioHashIndex`` builds on it.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Mapping

import numba
import numpy as np

from ._centering import K, MIN_ROWS, SHARES, best_share, held_out_recalls, sample_rows
from ._encoding_kernels import top_k_codes
from ._learning_kernels import learn_batch, p_power
from ._lengths import LEVELS, are_levels, byte_lengths, length_bytes, lengths, levels
from ._progress import progress
from ._sampling import RowSample
from ._subspace import (ITQ_ROWS, MAX_RANK, itq_rotation, learn_subspace, principal_basis,
                        projection, random_rotation)
from ._threads import blas_limit
from ._validation import INT64_MAX, check_positive_int, check_real

log = logging.getLogger(__name__)

ENCODE_BYTES = 1 << 20  # the (rows, m) float32 block of inputs stays in cache for the selection
PRODUCT_ROWS = 100  # rows of a training batch multiplied by one thread (epoch)
INITS = ("sample", "gaussian", "orthogonal")
SCORINGS = ("hamming", "asymmetric")
PROJECTIONS = ("random", "subspace", "learned")
WORK_BUDGET = 3e11  # multiply-adds of the products of a whole training run (auto_epochs)
MIN_FACTOR = 1e-2  # Hebbian factors below this are left out of the rule (see BioHashParams)
SAFE_EXPONENT = 32  # rows within 2**+-32 (and the mean) are encoded as they are (scale_exponents)


def scale_exponents(x: np.ndarray, mean_exponent: int | None) -> np.ndarray | None:
    """int32 (n, 1) powers of two to divide the rows of float32 (n, d) x by before their
    products with the weights, so that neither the products nor their squares overflow or
    underflow; None when no row needs it (the usual case).

    A row keeps exponent 0 (it is used as it is, bit for bit as before) when the exponent of
    its largest |value|, or ``mean_exponent`` (that of the mean subtracted from it, None if
    none) if larger, is within +-SAFE_EXPONENT; otherwise it is that exponent, which brings the
    row and the mean below 1. Scaling by a power of two is exact, so a row's code is the same
    at every scale up to float32's maximum."""
    if x.size:   # first a bound from two reductions: rows' exponents are at most top's
        top = int(np.frexp(max(x.max(), -x.min()))[1])
        high = top if mean_exponent is None else max(top, mean_exponent)
        low = high if len(x) == 1 else mean_exponent   # at most every row's exponent
        if high <= SAFE_EXPONENT and low is not None and low >= -SAFE_EXPONENT:
            return None
    _, e = np.frexp(np.abs(x).max(axis=1, keepdims=True, initial=0.0))
    if mean_exponent is not None:
        e = np.maximum(e, mean_exponent)
    safe = np.abs(e) <= SAFE_EXPONENT
    if safe.all():
        return None
    e[safe] = 0
    return e


def encode_block_rows(n_hidden: int) -> int:
    """Rows projected at once when encoding: about ENCODE_BYTES of float32 inputs."""
    return max(64, ENCODE_BYTES // (4 * n_hidden))


# ---------------------------------------------------------------- hyperparameter declarations
# Each hyperparameter is declared once, as a field of BioHashParams: its constraint, help text
# and default, or its default for each task where the tasks differ. BioHashIndex's keywords,
# the task presets (TASKS) and the command line's options are derived from the declarations.
@dataclass(frozen=True)
class Int:
    """An integer in [minimum, INT64_MAX] (every int is saved as an int64); None if optional."""
    minimum: int = 1
    optional: bool = False

    def check(self, value, name: str) -> None:
        if value is not None or not self.optional:
            check_positive_int(value, name, minimum=self.minimum, maximum=INT64_MAX)


@dataclass(frozen=True)
class Real:
    """A finite real number >= low (> low if not inclusive)."""
    low: float
    inclusive: bool = True

    def check(self, value, name: str) -> None:
        check_real(value, name, low=self.low, low_inclusive=self.inclusive)


@dataclass(frozen=True)
class OneOf:
    """One of a few values."""
    values: tuple

    def check(self, value, name: str) -> None:
        if value not in self.values:
            raise ValueError(f"{name} must be one of {self.values}, got {value!r}")


@dataclass(frozen=True)
class Bool:
    """A bool (numpy's too)."""

    def check(self, value, name: str) -> None:
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be a bool, got {type(value).__name__}")


# What an index is for (``BioHashIndex(task=...)``) and its activity, hash_length / n_hidden:
# "neighbors": nearest-neighbour search (the IndexLSH swap, RAG): half the units active,
#   centred inputs, orthogonal initial weights, asymmetric scoring (benchmarks/ann_text.py).
# "labels": retrieval by content class (the BioHash paper's MNIST protocol): sparse codes,
#   the rule tuned on MNIST (benchmarks/mnist_map.py), Hamming scoring.
ACTIVITY = {"neighbors": 0.5, "labels": 0.05}
PARAMS_TASK = "labels"  # the task whose defaults are BioHashParams's own


def hyperparameter(constraint, help: str, default=dataclasses.MISSING, tasks: dict | None = None,
                   before=dataclasses.MISSING):
    """A BioHashParams field: its constraint, help text and default, or ``tasks``, its
    default for each task (the field's own default is that of PARAMS_TASK); ``before``: the
    value implied by files saved before the field existed, which lack it (docs/format.md)."""
    if tasks is not None:
        default = tasks[PARAMS_TASK]
    return dataclasses.field(default=default, metadata={
        "constraint": constraint, "help": help, "tasks": tasks, "before": before})


@dataclass(frozen=True)
class BioHashParams:
    """Hyperparameters of a BioHash model, validated once at construction.

    Each field declares its constraint, help text and default (by task where they differ,
    ``TASKS``); d, hash_length and n_hidden have none. To add a hyperparameter, declare it
    here and use it in ``BioHashModel``: ``BioHashIndex``'s keywords, the task presets, the
    command line's options, ``info`` and the saved file follow (give it ``before=``, the
    value files saved before it imply, so that they still load). The README says how the
    defaults were chosen.
    """

    d: int = hyperparameter(Int(), "input dimension")
    hash_length: int = hyperparameter(Int(), "the number of active units per code")
    n_hidden: int = hyperparameter(Int(), "the number of hidden units (> hash_length)")
    p: float = hyperparameter(Real(1.0), "Lebesgue norm of the learning rule",
                              tasks={"neighbors": 2.0, "labels": 1.5})
    spread: float = hyperparameter(
        Real(0.0), "Hebbian factor exp(-(r-1)/(spread hash_length)) on the unit at rank r <= "
        f"hash_length, where that is >= {MIN_FACTOR:g} (0: top unit only, the rule of Krotov "
        "& Hopfield)",
        tasks={"neighbors": 0.0, "labels": 0.03}, before=0.0)
    delta: float = hyperparameter(Real(0.0), "anti-Hebbian strength, on the unit at rank",
                                  tasks={"neighbors": 0.0, "labels": 0.0})
    rank: int = hyperparameter(Int(2), "rank of the anti-Hebbian unit", 2)
    epochs: int | None = hyperparameter(
        Int(0, optional=True), "training epochs: passes of the rule over the training set "
        "(0: none, training learns the mean only; None: chosen from n_hidden and the number "
        "of training vectors, auto_epochs)",
        tasks={"neighbors": 0, "labels": None})
    batch_size: int = hyperparameter(Int(), "training vectors per update of the rule", 200)
    learning_rate: float = hyperparameter(Real(0.0, inclusive=False),
                                          "initial learning rate, annealed linearly to 0", 0.04)
    seed: int = hyperparameter(Int(0), "seed of the random initial weights and shuffles", 0)
    init: str = hyperparameter(
        OneOf(INITS), "initial weights: random training vectors on the unit p-sphere (sample), "
        "standard normal as in Krotov & Hopfield's code (gaussian), or random rotations "
        "(orthogonal)", tasks={"neighbors": "orthogonal", "labels": "sample"})
    center: bool = hyperparameter(Bool(), "subtract the training mean from every input",
                                  tasks={"neighbors": True, "labels": False})
    scoring: str = hyperparameter(
        OneOf(SCORINGS), "rank by Hamming or weighted (asymmetric) Hamming distance",
        tasks={"neighbors": "asymmetric", "labels": "hamming"}, before="hamming")
    projection: str = hyperparameter(
        OneOf(PROJECTIONS), "the weights before any epochs of the rule: the initial weights "
        "of init (random), or the top principal directions of the centred data (center=True; "
        "else init's weights) learned with "
        "Sanger's Hebbian rule, rotated at random (subspace) or by iterative quantisation "
        "(learned), the subspace size picked on held-out training rows (docs/learned-codes.md)",
        tasks={"neighbors": "learned", "labels": "random"}, before="random")
    length_byte: bool = hyperparameter(
        Bool(), "one more byte per code holding |x - mean| (70 log-spaced levels), so that "
        "asymmetric scoring estimates L2 distances rather than angles: for data whose lengths "
        "vary (docs/learned-codes.md)", False, before=False)

    def __post_init__(self):
        for f in dataclasses.fields(self):
            f.metadata["constraint"].check(getattr(self, f.name), f.name)
        if self.hash_length >= self.n_hidden:
            raise ValueError(f"hash_length ({self.hash_length}) must be smaller than n_hidden "
                             f"({self.n_hidden})")
        if self.rank > self.n_hidden:
            raise ValueError(f"rank ({self.rank}) must be <= n_hidden ({self.n_hidden})")
        if self.length_byte and self.scoring != "asymmetric":
            raise ValueError("length_byte=True needs scoring='asymmetric' (the byte serves "
                             f"its distance estimate), got scoring={self.scoring!r}")

    @property
    def code_size(self) -> int:
        """Bytes per code: one bit per hidden unit, rounded up to whole bytes, and the length
        byte (``length_byte``) after them."""
        return (self.n_hidden + 7) // 8 + self.length_byte

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


# the hyperparameters proper: every field but d, hash_length and n_hidden
HYPERPARAMETERS = tuple(f for f in dataclasses.fields(BioHashParams)
                        if f.default is not dataclasses.MISSING)
# each task's activity and the defaults of the hyperparameters declared per task
TASKS = {task: {"activity": activity, **{f.name: f.metadata["tasks"][task]
                                          for f in HYPERPARAMETERS if f.metadata["tasks"]}}
         for task, activity in ACTIVITY.items()}


# the hyperparameters that only the learning rule reads: they change nothing when it runs no
# epochs (epochs=0, the default of task="neighbors")
RULE_ONLY = ("spread", "delta", "rank", "batch_size", "learning_rate")


def hyperparameters_in_use(params: BioHashParams) -> tuple:
    """The fields of HYPERPARAMETERS that affect a model of ``params``: all of them, less
    RULE_ONLY when the learning rule runs no epochs."""
    return tuple(f for f in HYPERPARAMETERS if params.epochs != 0 or f.name not in RULE_ONLY)


def n_hidden_for(hash_length: int, activity: float | None = None,
                 task: str = "neighbors") -> int:
    """round(hash_length / activity): the number of hidden units for a hash length and
    activity (None: the task's)."""
    if activity is None:
        activity = TASKS[task]["activity"]
    check_real(activity, "activity", low=0.0, high=1.0, low_inclusive=False)
    return max(hash_length + 1, int(round(hash_length / activity)))


def task_params(task: str, d: int, hash_length: int, n_hidden: int | None = None,
                activity: float | None = None, **hyperparameters) -> BioHashParams:
    """The hyperparameters of ``BioHashIndex(d, hash_length, n_hidden, activity, task=task,
    **hyperparameters)``: those declared per task and left at None take the task's default,
    n_hidden None is ``n_hidden_for(hash_length, activity)``. An unknown keyword raises a
    TypeError naming it."""
    names = [f.name for f in HYPERPARAMETERS]
    for name in hyperparameters:
        if name not in names:
            raise TypeError(f"unexpected keyword argument {name!r}; the hyperparameters are "
                            f"{', '.join(names)}")
    if task not in TASKS:
        raise ValueError(f"task must be one of {tuple(TASKS)}, got {task!r}")
    preset = TASKS[task]
    hyper = {f.name: preset[f.name] for f in HYPERPARAMETERS if f.metadata["tasks"]}
    hyper.update((name, value) for name, value in hyperparameters.items()
                 if value is not None or name not in preset)
    hash_length = check_positive_int(hash_length, "hash_length")
    if n_hidden is None:
        n_hidden = n_hidden_for(hash_length, preset["activity"] if activity is None else activity)
    return BioHashParams(d=d, hash_length=hash_length, n_hidden=n_hidden, **hyper)


# ---------------------------------------------------------------- how many training rows
class SmallTrainingSetWarning(UserWarning):
    """A model was trained on fewer rows than ``training_rows_needed`` (e.g. an untrained
    index's first ``add`` of a small batch); filter it with ``warnings.filterwarnings``."""


class UntrainedIndexWarning(UserWarning):
    """Codes were made or decoded by an untrained index, with its initial weights
    (``BioHashModel.initial``), which training replaces."""


# Training rows below which a model is measurably worse than one trained on all the rows
# (benchmarks/train_rows.py: recall@10 on siftsmall, bigann10k, fmnistsmall; mAP@All on
# MNIST; mean of 3 draws of the rows). ROWS_FOR_MEAN, when training learns the mean only
# (epochs=0, the default task): from 1,000 rows recall@10 is 0.98-1.08 x that of all rows on
# the three sets at k = 16 and 64; from 10 to 300 rows 0.94-1.03 (the centring check's
# sample, a tenth of it held out, is then small enough to pick a worse share: 0.94 at 200
# rows on siftsmall, k = 64); 1 row 0.63-0.88. ROWS_FOR_RULE, when the learning rule runs:
# mAP@All is 0.95-0.97 x that of 9,000 rows at 2,000 rows, 0.93-0.94 at 1,000 (m = 320, 1,280).
ROWS_FOR_MEAN = 1000
ROWS_FOR_RULE = 2000


def training_rows_needed(params: BioHashParams) -> int:
    """Training rows a model of ``params`` needs to be about as good as one trained on many
    (the constants above say why): ROWS_FOR_MEAN when training learns only the mean
    (``epochs=0``, the default task), ROWS_FOR_RULE when the learning rule runs, and at
    least n_hidden with ``init="sample"`` (one training row per unit). The one place this
    rule lives: change it here when what training learns changes."""
    rows = ROWS_FOR_MEAN if params.epochs == 0 else ROWS_FOR_RULE
    return max(rows, params.n_hidden) if params.init == "sample" else rows


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
    blocks = [random_rotation(d, rng).T[:min(d, m - s)] for s in range(0, m, d)]
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


class BioHashModel:
    """Learned sparse expansive layer: ``train`` on float32 (n, d), ``encode`` to uint8 codes."""

    def __init__(self, params: BioHashParams):
        self.params = params
        self.mean_: np.ndarray | None = None
        self.weights_: np.ndarray | None = None
        self.train_stats_: dict[str, np.ndarray] = {}
        self.length_levels_: np.ndarray | None = None   # float32 (LEVELS,) with length_byte
        self._proj = None  # (W_p, bias mantissa, exponent, bias): ``_projection``

    @classmethod
    def from_arrays(cls, params: BioHashParams, mean: np.ndarray | None,
                    weights: np.ndarray | None,
                    train_stats: Mapping[str, np.ndarray] | None = None,
                    length_levels: np.ndarray | None = None) -> "BioHashModel":
        """A model with learned state (as a saved index holds it): float32 (d,) mean and
        (n_hidden, d) weights, used as they are (no copy), or both None for an untrained
        model; train_stats: float64 (epochs,) per training statistic; length_levels: float32
        (LEVELS,) ascending positive lengths with ``length_byte`` (``_lengths.levels``),
        else None."""
        model = cls(params)
        if (mean is None) != (weights is None):
            raise ValueError("mean and weights must both be given or both be None")
        if weights is not None:
            for name, x, shape in (("mean", mean, (params.d,)),
                                   ("weights", weights, (params.n_hidden, params.d))):
                if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.shape != shape:
                    raise ValueError(f"{name} must be a float32 array of shape {shape}, got "
                                     f"{getattr(x, 'dtype', type(x).__name__)} "
                                     f"{getattr(x, 'shape', '')}")
            model.mean_, model.weights_ = mean, weights
        if (length_levels is not None) != (params.length_byte and weights is not None):
            raise ValueError("length_levels must be given exactly when the model is trained "
                             "with length_byte=True")
        if length_levels is not None and not are_levels(length_levels):
            raise ValueError(f"length_levels must be a float32 array of {LEVELS} ascending "
                             "positive finite lengths")
        model.length_levels_ = length_levels
        model.train_stats_ = dict(train_stats or {})
        return model

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
        weights (``init_weights``), then each epoch (``epoch``) is one pass, shuffling rows
        within each block (``batches``; a single block, as ``train`` gives, is a full shuffle).

        BLAS runs on one thread throughout (a process-wide setting while training runs):
        OpenBLAS rounds a product differently on different thread counts, and the learned
        state is the same whatever ``n_threads`` is; ``epoch`` multiplies in row blocks on
        numba's number of threads instead.
        """
        with blas_limit(1):
            return self._train_blocks(blocks)

    def _train_blocks(self, blocks: Callable[[], Iterable[np.ndarray]]) -> "BioHashModel":
        prm = self.params
        rng = np.random.default_rng(prm.seed)
        n, mean, sample, check = self._first_pass(blocks, rng)
        W = self._initial_weights(self._prepare(sample, mean), rng)
        if prm.projection != "random":
            W = self._learned_weights(blocks, n, mean, check, W)
        epochs = auto_epochs(prm.n_hidden, n, prm.d) if prm.epochs is None else prm.epochs
        win_frac = np.zeros(epochs, np.float64)
        norm_err = np.zeros(epochs, np.float64)
        for ep in progress(range(epochs), "training", "epoch"):
            lr = prm.learning_rate * (1.0 - ep / epochs)
            win_frac[ep] = self.epoch(W, self.batches(blocks, mean, rng), lr, n)
            norms = np.einsum("ij,ij->i", W, p_weights(W, prm.p), dtype=np.float64)  # |W|^p
            norm_err[ep] = np.abs(norms ** (1 / prm.p) - 1.0).max()
        log.info("trained %d epochs on %d vectors; units that won in the last epoch: %s",
                 epochs, n, f"{100 * win_frac[-1]:.1f}%" if epochs else "-")
        if prm.center:
            mean = self._centring_mean(mean, W, check)
        self.mean_, self.weights_ = mean, W
        self.length_levels_ = self._length_levels(blocks, mean) if prm.length_byte else None
        self.train_stats_ = {"won_fraction": win_frac, "max_norm_error": norm_err}
        self._proj = None
        return self

    def _centring_mean(self, mean: np.ndarray, W: np.ndarray, check: np.ndarray) -> np.ndarray:
        """float32 (d,): the share of the training mean that ``_centering.best_share`` picks
        for weights W on float32 (n, d) check, a uniform sample of the training rows."""
        prm = self.params.replace(length_byte=False)   # the checks compare codes' bits
        share, recalls = best_share(
            lambda s: BioHashModel.from_arrays(prm, (s * mean).astype(np.float32), W), check)
        if recalls:
            log.info("centring: %g x the training mean (recall@%d of held-out training rows "
                     "for shares %s: %s)", share, K, SHARES,
                     ", ".join(f"{r:.3f}" for r in recalls))
        return (share * mean).astype(np.float32)

    def _learned_weights(self, blocks, n: int, mean: np.ndarray, check: np.ndarray | None,
                         initial: np.ndarray) -> np.ndarray:
        """float32 (m, d): the learned projection (``_subspace``) of the training data in
        ``blocks`` (n rows, float32 (d,) mean): the top r = min(m, d, MAX_RANK) directions
        rotated as ``projection`` says. Where m > d / 2 (more units than the data may have
        useful directions), that or the float32 (m, d) ``initial`` weights, and where m > d
        also the top r / 2 directions, whichever finds most held-out neighbours of the
        float32 check sample (``held_out_recalls``; ties go to the larger subspace).
        ``initial`` for uncentred data (``center=False``) and when there is no check (fewer
        than MIN_ROWS rows)."""
        prm = self.params
        rng = np.random.default_rng([prm.seed, 2])
        if not prm.center or check is None or len(check) < MIN_ROWS:
            return initial
        # rows divided by a power of two (exact) bring the sample below 1: no overflow
        e = _exponent(np.maximum(np.abs(check).max(axis=0), np.abs(mean))) or 0
        mean_e = np.ldexp(mean, -e)
        xc = np.ldexp(check, -e) - mean_e
        sq = float(np.mean(np.einsum("ij,ij->i", xc, xc, dtype=np.float64)))
        scale = 1 / math.sqrt(sq) if sq > 0 else 1.0
        r = min(prm.n_hidden, prm.d, MAX_RANK)
        W = learn_subspace(lambda: (np.ldexp(xb, -e) for xb in blocks()), mean_e, scale, r, n,
                           rng)
        basis = principal_basis(W, xc)
        if 2 * prm.n_hidden <= prm.d:   # as many directions as units: measured to win
            return self._rotated(basis, xc, rng)
        sizes = (r, r // 2) if prm.n_hidden > prm.d else (r,)
        candidates = [self._rotated(basis[:size], xc, rng) for size in sizes] + [initial]
        bits = prm.replace(length_byte=False)   # the checks compare codes' bits
        recalls = held_out_recalls(
            [BioHashModel.from_arrays(bits, mean, W) for W in candidates], check)
        log.info("projection: recall@%d of held-out training rows %s for %s learned "
                 "directions and for the initial weights", K,
                 ", ".join(f"{x:.3f}" for x in recalls), sizes)
        return candidates[int(np.argmax(recalls))]

    @staticmethod
    def _length_levels(blocks, mean: np.ndarray) -> np.ndarray:
        """float32 (LEVELS,): the length byte's levels, from the least positive and the
        greatest |x - mean| of the training rows (one pass over ``blocks``)."""
        least, greatest = np.inf, 0.0
        for xb in blocks():
            ls = lengths(xb, mean)
            greatest = max(greatest, float(ls.max(initial=0.0)))
            least = min(least, float(ls[ls > 0].min(initial=np.inf)))
        return levels(least, greatest)

    def _rotated(self, basis: np.ndarray, xc: np.ndarray, rng) -> np.ndarray:
        """float32 (m, d) weights on float32 (r, d) basis rows: rotated by iterative
        quantisation of the centred float32 sample xc (``projection="learned"``, r <=
        MAX_RANK) or at random (``"subspace"``)."""
        size = min(self.params.n_hidden, len(basis))
        if self.params.projection == "learned":
            R = itq_rotation(xc[:ITQ_ROWS] @ basis[:size].T, rng)
        else:
            R = random_rotation(size, rng)
        return projection(basis, self.params.n_hidden, R, rng)

    # The steps of training, public for benchmarks/bench_train.py, which times one epoch:
    # ``n, mean, W = model.init_weights(blocks, rng)``, then
    # ``model.epoch(W, model.batches(blocks, mean, rng), lr, n)`` for each epoch.
    def init_weights(self, blocks: Callable[[], Iterable[np.ndarray]],
                     rng: np.random.Generator) -> tuple[int, np.ndarray, np.ndarray]:
        """One pass over the training data (``blocks()`` as in ``train_blocks``): n, the
        number of vectors; mean, float32 (d,), the training mean if ``center`` else zeros;
        W, float32 (m, d), the initial weights."""
        n, mean, sample, _ = self._first_pass(blocks, rng)
        return n, mean, self._initial_weights(self._prepare(sample, mean), rng)

    def batches(self, blocks: Callable[[], Iterable[np.ndarray]], mean: np.ndarray,
                rng: np.random.Generator) -> Iterator[np.ndarray]:
        """Mini-batches of one epoch, float32 (<= batch_size, d): rows prepared as
        ``_prepare`` says, shuffled within each block."""
        for xb in blocks():
            xb = self._prepare(xb, mean)[rng.permutation(len(xb))]
            for s in range(0, len(xb), self.params.batch_size):
                yield xb[s:s + self.params.batch_size]

    def epoch(self, W: np.ndarray, batches: Iterable[np.ndarray], lr: float, n: int) -> float:
        """One pass of the plasticity rule over ``batches`` of n vectors in all, updating
        the float32 (m, d) weights W in place; returns the fraction of units that won.

        Each batch's inputs are multiplied in blocks of PRODUCT_ROWS rows by numba's number
        of threads, each with one BLAS thread: the same bits whatever the thread count."""
        prm = self.params
        won = np.zeros(prm.n_hidden, bool)
        g = prm.rank_factors()
        Wp = p_weights(W, prm.p)  # W itself for p = 2; else kept in step with W, row by row
        rows = min(prm.batch_size, n)  # no batch is larger
        buf = np.empty((rows, prm.n_hidden), np.float32)  # reused: no page faults
        n_workers = min(numba.get_num_threads(), -(-rows // PRODUCT_ROWS))
        with blas_limit(1), ThreadPoolExecutor(n_workers) as pool:
            for xb in batches:
                tot = buf[:len(xb)]

                def product(s, xb=xb, tot=tot):
                    np.matmul(xb[s:s + PRODUCT_ROWS], Wp.T, out=tot[s:s + PRODUCT_ROWS])
                for _ in pool.map(product, range(0, len(xb), PRODUCT_ROWS)):
                    pass
                learn_batch(W, Wp, xb, tot, g, prm.p, lr, won)
        return float(won.mean())

    def _first_pass(self, blocks, rng):
        """Count, mean, a uniform sample of up to n_hidden rows (smallest random keys) for
        the initial weights, and if ``center`` or a learned ``projection``, one of
        ``_centering.sample_rows`` rows for the checks (else None), drawn with a random
        stream of its own so the weights are the same with or without it."""
        prm = self.params
        n, total = 0, np.zeros(prm.d, np.float64)
        sample = RowSample(prm.n_hidden, prm.d)
        checked = prm.center or prm.projection != "random"
        check = RowSample(sample_rows(prm.d), prm.d) if checked else None
        check_rng = np.random.default_rng([prm.seed, 1])
        for xb in blocks():
            n += len(xb)
            total += xb.sum(axis=0, dtype=np.float64)
            if prm.init == "sample":
                sample.add(xb, rng)
            if check is not None:
                check.add(xb, check_rng)
        if n == 0:
            raise ValueError("the training data holds no vectors")
        mean = (total / n).astype(np.float32) if prm.center else np.zeros(prm.d, np.float32)
        return n, mean, sample.rows, None if check is None else check.rows

    def _prepare(self, x: np.ndarray, mean: np.ndarray) -> np.ndarray:
        """Training vectors (centred if ``center``) scaled to unit L2 norm, so each sample
        weighs the same.

        Scaling a vector does not change which units rank highest, so codes are unaffected.
        Each row is first scaled by a power of two that brings its largest value into
        [0.5, 1): exact, so the result is the same as without it, but the float32 norm
        neither overflows (values near 1e19) nor underflows (near 1e-30).
        """
        e = scale_exponents(x, _exponent(mean))
        xt = x - mean if e is None else np.ldexp(x, -e) - np.ldexp(mean, -e)  # no overflow
        _, exp = np.frexp(np.abs(xt).max(axis=1, keepdims=True))
        np.ldexp(xt, -exp, out=xt)
        norms = np.linalg.norm(xt, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return (xt / norms).astype(np.float32)

    def _initial_weights(self, sample: np.ndarray, rng: np.random.Generator) -> np.ndarray:
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

    # ---------------------------------------------------------------- encoding
    def encode(self, x: np.ndarray) -> np.ndarray:
        """Codes of float32 (n, d) vectors: uint8 (n, code_size), exactly hash_length bits
        set per row.

        Blocks of about ENCODE_BYTES of products are encoded whole (product, then selection)
        by numba's number of threads, each with one BLAS thread (a process-wide setting while
        they run), so that BLAS's and OpenMP's thread pools do not take turns on every block
        (README, Performance) and the codes are the same whatever the thread count.
        """
        if not self.is_trained:
            raise RuntimeError("the model is not trained: call train() first")
        prm = self.params
        out = np.empty((len(x), prm.code_size), np.uint8)
        rows = encode_block_rows(prm.n_hidden)
        scratch = threading.local()

        def encode_block(s):
            tot = getattr(scratch, "tot", None)
            if tot is None:
                tot = scratch.tot = np.empty((min(rows, len(x)), prm.n_hidden), np.float32)
            xs = x[s:s + rows]
            _, bias = self._inputs(xs, tot[:len(xs)])
            out[s:s + rows] = top_k_codes(tot[:len(xs)], prm.hash_length, prm.code_size, bias)
            if prm.length_byte:
                out[s:s + rows, -1] = length_bytes(lengths(xs, self.mean_), self.length_levels_)

        starts = range(0, len(x), rows)
        n_workers = min(numba.get_num_threads(), len(starts))
        with blas_limit(1):
            if n_workers <= 1:
                for s in progress(starts, "encoding", "block"):
                    encode_block(s)
                return out
            with ThreadPoolExecutor(n_workers) as pool:
                for _ in progress(pool.map(encode_block, starts), "encoding", "block",
                                  len(starts)):
                    pass
        return out

    def inputs(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(acts, bias): the hidden-unit inputs float32 (n, m) of float32 (n, d) rows, before
        (bias float32 (m,)) or after (None) subtracting the mean's share (``_inputs``)."""
        if not self.is_trained:
            raise RuntimeError("the model is not trained: call train() first")
        return self._inputs(x, np.empty((len(x), self.params.n_hidden), np.float32))

    def _inputs(self, x: np.ndarray, out: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(out, bias): hidden-unit inputs of float32 (n, d) rows written to float32 (n, m)
        out, before (bias float32 (m,)) or after (None) subtracting the mean's share; rows
        ``scale_exponents`` picks are divided by their power of two first, and their bias
        with them."""
        Wp, bias_m, bias_e, bias = self._projection()
        e = scale_exponents(x, bias_e)
        if e is None:
            np.matmul(x, Wp.T, out=out)
            return out, bias
        np.matmul(np.ldexp(x, -e), Wp.T, out=out)
        if bias_m is not None:
            out -= np.ldexp(bias_m, bias_e - e)
        return out, None

    # ---------------------------------------------------------------- before training, decoding
    @functools.cached_property
    def initial(self) -> "BioHashModel":
        """The model training starts from: the initial weights drawn from ``seed`` (as
        ``train`` draws them) and a zero mean, so that an untrained index can encode
        (``sa_encode``) deterministically. A RuntimeError for ``init="sample"``, whose
        initial weights are training rows. With ``length_byte`` every length byte holds 1."""
        prm = self.params
        if prm.init == "sample":
            raise RuntimeError('the initial weights of init="sample" are training vectors: '
                               "train the model first (or use init='orthogonal' or 'gaussian')")
        W = self._initial_weights(None, np.random.default_rng(prm.seed))
        return BioHashModel.from_arrays(prm, np.zeros(prm.d, np.float32), W,
                                        length_levels=levels(1.0, 1.0) if prm.length_byte
                                        else None)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """float32 (n, d) vectors of uint8 (n, code_size) codes: ``mean_ + u``, u the unit
        vector along ``W_p.T @ (b - k / m)``, b the code's m bits (0/1), W_p the projection
        that ``encode`` applies to ``x - mean_``; with ``length_byte``, ``mean_ + s u``, s the
        length the code's last byte holds.

        A code keeps the direction of ``x - mean_`` (scaling it changes no unit's rank), not
        its length, so the decoded vector has its direction (the cosine of u to
        ``x - mean_``: benchmarks/decode.py) at unit length. With half the units active
        (the default task), ``b - k / m`` is half the code's +-1 bits.
        """
        if not self.is_trained:
            raise RuntimeError("the model is not trained: call train() first")
        prm = self.params
        bits = np.unpackbits(codes, axis=1, count=prm.n_hidden, bitorder="little")
        u = (bits - np.float32(prm.hash_length / prm.n_hidden)) @ self._projection()[0]
        norms = np.linalg.norm(u, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        if prm.length_byte:
            norms /= byte_lengths(codes[:, -1:], self.length_levels_)
        return (u / norms + self.mean_).astype(np.float32)

    def _projection(self):
        """(W_p, bias mantissa, exponent, bias): W_p float32 (m, d) (``p_weights``); the bias
        mean @ W_p.T is ldexp(mantissa, exponent), the mantissa float32 (m,) computed on the
        mean divided by 2**exponent (so it cannot overflow); mantissa, exponent and bias
        None if the mean is 0."""
        if self._proj is None:
            Wp = np.ascontiguousarray(p_weights(self.weights_, self.params.p))
            e = _exponent(self.mean_)
            bias_m = None if e is None else np.ldexp(self.mean_, -e) @ Wp.T
            bias = None if e is None else np.ldexp(bias_m, e)
            self._proj = (Wp, bias_m, e, bias)  # no bias: the selection reads the products in place
        return self._proj


def _exponent(v: np.ndarray) -> int | None:
    """The exponent of the largest |value| of v (frexp's), None if v is all zeros."""
    top = np.abs(v).max()
    return int(np.frexp(top)[1]) if top else None
