"""The router of IVF storage: which inverted lists a vector is stored in and a query probes.

A ``Router`` holds ``nlist`` units u_l (float32 (nlist, d)), a centre c (d,) and a bias b
(nlist,); a vector x activates unit l by ``(x - c) . u_l + b_l``. A stored vector is listed
under its ``assign`` most active units, a query probes its ``nprobe`` most active ones.
Three kinds (``router=``):

- ``"learned"`` (the default): the units are learned with the Krotov-Hopfield plasticity
  rule (``_learning_kernels.learn_batch``, p = 2, the top unit of each input Hebbian: a
  competitive rule) from the inputs the model encodes (centred by the model's mean, scaled
  to unit length), starting from random training inputs; b = 0.
- ``"kmeans"``: faiss k-means centroids of the raw vectors, c = 0, b = -|u_l|^2 / 2, so
  the most active unit is the nearest centroid (L2), as ``IndexIVFFlat``'s quantizer.
- ``"random"``: untrained random orthonormal units (the ablation), centred as "learned".

Sizing (``benchmarks/bench_routing.py`` measured the constants below): ``nlist=None`` is
``AUTO_NLIST_FACTOR * sqrt(n)`` of the n training rows (faiss's guidance is 4-16 sqrt(n)),
at most n; ``nprobe=None`` is learned at training (``nprobe_``): the fewest units whose
lists hold ``NPROBE_RECALL`` of the exact ``CHECK_K`` nearest neighbours of held-out
training rows among the training rows (a check like the centring check's), which keeps
>= 0.95 of flat storage's recall@10 on the repository's sets.
"""
from __future__ import annotations

import math

import faiss
import numpy as np

from ._learning_kernels import learn_batch
from ._model import orthonormal_rows
from ._router_kernels import top_units
from ._sampling import RowSample
from ._validation import check_positive_int

ROUTERS = ("learned", "kmeans", "random")
ASSIGNS = (1, 2)
DEFAULT_ASSIGN = 1          # lists per stored vector (bench_routing.py)
AUTO_NLIST_FACTOR = 4       # nlist = 4 sqrt(n) training rows
ROWS_PER_UNIT = 64          # training rows used per unit, at most (as faiss k-means' 39-256)
EPOCHS = 20                 # the learned router's rule: epochs, ...
LEARNING_RATE = 0.1         # ... initial learning rate (annealed linearly to 0), ...
BATCH_SIZE = 50             # ... inputs per update
HEBBIAN = np.array([1.0])   # rank factors of the rule: the top unit only
KMEANS_ITERATIONS = 20
CHECK_QUERIES = 200         # held-out training rows of the nprobe check ...
CHECK_K = 10                # ... their neighbours ...
NPROBE_RECALL = 0.9         # ... the share of them the probed lists must hold
TOP_BLOCK = 1 << 22         # activations (rows x units) routed at once: 16 MiB


def auto_nlist(n: int) -> int:
    """Lists for n training rows: AUTO_NLIST_FACTOR sqrt(n), at least 1, at most n."""
    return max(1, min(n, round(AUTO_NLIST_FACTOR * math.sqrt(n))))


class Router:
    """Units that route vectors to inverted lists (see the module docstring).

    kind: one of ROUTERS; nlist: units (None: ``auto_nlist`` of the training rows); nprobe:
    units a query probes (None: ``nprobe_``, learned at training); assign: units a stored
    vector is listed under (1 or 2). Learned state: ``mean_`` float32 (d,), ``units_``
    float32 (nlist, d), ``bias_`` float32 (nlist,), ``nprobe_`` int.
    """

    def __init__(self, kind: str = "learned", nlist: int | None = None,
                 nprobe: int | None = None, assign: int = DEFAULT_ASSIGN):
        if kind not in ROUTERS:
            raise ValueError(f"router must be one of {ROUTERS}, got {kind!r}")
        if not isinstance(assign, (int, np.integer)) or isinstance(assign, bool) or (
                assign not in ASSIGNS):
            raise ValueError(f"assign must be one of {ASSIGNS}, got {assign!r}")
        self.kind, self.assign = kind, int(assign)
        self.nlist = None if nlist is None else check_positive_int(nlist, "nlist")
        self.nprobe = None if nprobe is None else check_positive_int(nprobe, "nprobe")
        self.mean_ = self.units_ = self.bias_ = None
        self.nprobe_: int | None = None

    @classmethod
    def from_arrays(cls, kind: str, nlist: int | None, nprobe: int | None, assign: int,
                    mean: np.ndarray, units: np.ndarray, bias: np.ndarray,
                    nprobe_: int) -> "Router":
        """A trained router (as a saved index holds it): float32 (d,) mean, (nlist, d)
        units, (nlist,) bias, used as they are."""
        router = cls(kind, nlist, nprobe, assign)
        router.mean_, router.units_, router.bias_ = mean, units, bias
        router.nprobe_ = check_positive_int(nprobe_, "nprobe_")
        return router

    def fresh(self) -> "Router":
        """An untrained router with the same settings."""
        return Router(self.kind, self.nlist, self.nprobe, self.assign)

    @property
    def is_trained(self) -> bool:
        return self.units_ is not None

    @property
    def n_units(self) -> int:
        """Units of the trained router."""
        return len(self.units_)

    @property
    def probes(self) -> int:
        """Units a query probes: ``nprobe``, or the learned ``nprobe_``."""
        return self.nprobe_ if self.nprobe is None else min(self.nprobe, self.n_units)

    @property
    def min_train(self) -> int:
        """Training rows needed: nlist (one per unit), 1 with nlist=None."""
        return self.nlist or 1

    def sample_rows(self, default: int) -> int:
        """Training rows the router uses at most: ROWS_PER_UNIT per unit (``default`` rows
        when nlist is chosen from them)."""
        return ROWS_PER_UNIT * self.nlist if self.nlist else default

    # ---------------------------------------------------------------- routing
    def activations(self, x: np.ndarray) -> np.ndarray:
        """float32 (n, nlist): the units' activations by float32 (n, d) vectors."""
        return (x - self.mean_) @ self.units_.T + self.bias_

    def top(self, x: np.ndarray, n_top: int) -> np.ndarray:
        """int64 (n, n_top): each vector's n_top most active units, most active first (ties
        to the lower unit); n_top <= nlist. Rows go in blocks of TOP_BLOCK activations."""
        rows = max(1, TOP_BLOCK // self.n_units)
        if len(x) > rows:
            return np.concatenate([self.top(x[s:s + rows], n_top)
                                   for s in range(0, len(x), rows)])
        return top_units(np.ascontiguousarray(self.activations(x), np.float32), n_top)

    def lists_of(self, x: np.ndarray) -> np.ndarray:
        """int64 (n, assign): the lists float32 (n, d) vectors are stored in."""
        return self.top(x, min(self.assign, self.n_units))

    def probe(self, x: np.ndarray, nprobe: int | None = None) -> np.ndarray:
        """int64 (nq, nprobe): the lists float32 (nq, d) queries scan, nearest first (None:
        ``probes``)."""
        return self.top(x, min(self.probes if nprobe is None else nprobe, self.n_units))

    # ---------------------------------------------------------------- training
    def train(self, x: np.ndarray, mean: np.ndarray, seed: int,
              verbose: bool = False) -> "Router":
        """Learn the units from float32 (n, d) training vectors (the model centres them by
        float32 (d,) mean), then ``nprobe_``; a uniform sample of at most ``sample_rows``
        rows is used, drawn with ``seed``; verbose: print what was learned (and faiss's
        k-means report)."""
        rng = np.random.default_rng([seed, 2])
        nlist = self.nlist or auto_nlist(min(len(x), self.sample_rows(len(x))))
        if len(x) < nlist:
            raise ValueError(f"IVF storage needs at least nlist={nlist} training vectors, "
                             f"got {len(x)}")
        if len(x) > ROWS_PER_UNIT * nlist:
            sample = RowSample(ROWS_PER_UNIT * nlist, x.shape[1])
            sample.add(x, rng)
            x = sample.rows
        d = x.shape[1]
        if self.kind == "kmeans":
            km = faiss.Kmeans(d, nlist, niter=KMEANS_ITERATIONS, seed=seed, verbose=verbose,
                              min_points_per_centroid=1, max_points_per_centroid=ROWS_PER_UNIT)
            km.train(np.ascontiguousarray(x))
            units = km.centroids.astype(np.float32)
            self.mean_ = np.zeros(d, np.float32)
            self.units_, self.bias_ = units, (-0.5 * (units * units).sum(axis=1)).astype(np.float32)
        else:
            self.mean_ = np.asarray(mean, np.float32)
            inputs = unit_rows(x - self.mean_)
            self.units_ = (learned_units(inputs, nlist, rng) if self.kind == "learned"
                           else orthonormal_rows(nlist, d, rng))
            self.bias_ = np.zeros(nlist, np.float32)
        self.nprobe_ = self._check_nprobe(x, rng)
        if verbose:
            print(f"Router ({self.kind}): {nlist} units from {len(x):,} vectors; nprobe_="
                  f"{self.nprobe_}, the units whose lists hold {NPROBE_RECALL:g} of held-out "
                  "rows' neighbours", flush=True)
        return self

    def _check_nprobe(self, x: np.ndarray, rng: np.random.Generator) -> int:
        """The fewest units whose lists hold NPROBE_RECALL of the exact CHECK_K nearest
        neighbours (L2) of CHECK_QUERIES held-out rows of float32 (n, d) x among the others."""
        if len(x) <= CHECK_QUERIES + CHECK_K:
            return self.n_units
        held = rng.choice(len(x), CHECK_QUERIES, replace=False)
        rest = np.setdiff1d(np.arange(len(x)), held)
        xq, xb = x[held], x[rest]
        _, exp = np.frexp(np.abs(x).max())     # a power of two: no overflow of squares
        _, gt = faiss.knn(np.ldexp(xq, -exp), np.ldexp(xb, -exp), CHECK_K)
        stored = self.lists_of(xb)                       # (n, assign)
        rank = np.argsort(self.probe(xq, self.n_units), axis=1)   # rank of each unit per query
        # the probe rank at which each true neighbour is first found
        found = np.take_along_axis(rank, stored[gt].reshape(len(xq), -1), 1)
        found = found.reshape(len(xq), CHECK_K, -1).min(axis=2).ravel()
        need = int(np.ceil(NPROBE_RECALL * len(found)))
        return int(np.sort(found)[need - 1]) + 1


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows of float32 (n, d) x scaled to unit L2 norm (zero rows left as they are)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (x / norms).astype(np.float32)


def learned_units(inputs: np.ndarray, nlist: int, rng: np.random.Generator) -> np.ndarray:
    """float32 (nlist, d): units learned by the plasticity rule on float32 (n, d) unit-length
    inputs (n >= nlist), starting from nlist of them."""
    W = inputs[rng.choice(len(inputs), nlist, replace=False)]   # a copy, of unit length
    won = np.zeros(nlist, bool)
    buf = np.empty((min(BATCH_SIZE, len(inputs)), nlist), np.float32)
    for epoch in range(EPOCHS):
        lr = LEARNING_RATE * (1.0 - epoch / EPOCHS)
        order = rng.permutation(len(inputs))
        for s in range(0, len(inputs), BATCH_SIZE):
            xb = inputs[order[s:s + BATCH_SIZE]]
            tot = np.matmul(xb, W.T, out=buf[:len(xb)])
            learn_batch(W, W, xb, tot, HEBBIAN, 2.0, lr, won)
    return W
