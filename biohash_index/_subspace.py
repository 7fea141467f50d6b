"""The learned projection of the neighbors task: a Hebbian subspace and a rotation inside it.

Training (``BioHashModel.train_blocks`` with ``projection="learned"`` or ``"subspace"``):

1. ``learn_subspace``: Sanger's rule (``_subspace_kernels``), streamed over the training
   blocks for a few passes, learns the top r principal directions of the centred data;
2. ``principal_basis``: those directions made orthonormal and ordered by their variance on
   a sample of training rows (an r x r eigenproblem), so that the first r' of them span the
   best r'-dimensional part of the learned subspace;
3. ``itq_rotation`` (``projection="learned"``): the rotation of the subspace whose sign bits
   lose least of the projected sample (Gong & Lazebnik's iterative quantisation: alternate
   binarising and the orthogonal Procrustes solution); ``"subspace"`` rotates at random;
4. ``projection``: the m rows of the weights: the rotated basis, then random rotations of the
   subspace for the units beyond its size.

The variance of each direction is kept (no whitening): codes compare directions, and the
high-variance directions should weigh more. docs/learned-codes.md has the figures.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable

import numpy as np

from ._subspace_kernels import sanger_batch

ROWS_SEEN = 32_768    # rows the rule sees in all, at least: more while the rule's work,
WORK = 1e9            # rows x r x d multiply-adds, stays below WORK (subspace_passes), in
MAX_PASSES = 32       # at most MAX_PASSES passes; or one pass over a share of each block
MAX_RANK = 256        # directions learned at most (beyond, the last add little: figures in docs)
BATCH = 256           # rows per BLAS product of the rule's outputs
LEARNING_RATE = 0.3   # of Sanger's rule on data scaled to a mean squared norm of 1, annealed
ITQ_ITERATIONS = 20
ITQ_ROWS = 2048       # sample rows the rotation is learned from


def subspace_passes(n: int, r: int, d: int) -> tuple[int, float]:
    """(passes, fraction): the rule's passes over n training rows and the fraction of each
    block's rows it takes, for r units of d inputs: max(ROWS_SEEN, WORK / (r d)) rows in
    all, 1 to MAX_PASSES passes."""
    n, rows = max(n, 1), max(ROWS_SEEN, WORK / (r * d))
    return int(min(MAX_PASSES, math.ceil(rows / n))), min(1.0, rows / n)


def learn_subspace(blocks: Callable[[], Iterable[np.ndarray]], mean: np.ndarray, scale: float,
                   r: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """float32 (r, d): Sanger's rule over the passes of ``blocks()`` (float32 (n_i, d)
    arrays, n rows in all) that ``subspace_passes`` says, each row centred by ``mean``
    (d,) and scaled by ``scale``, shuffled within its block (a uniform share of it for
    large n); starts from random orthonormal rows."""
    d = len(mean)
    q, _ = np.linalg.qr(rng.standard_normal((d, r)))
    W = np.ascontiguousarray(q.T, dtype=np.float32)
    passes, fraction = subspace_passes(n, r, d)
    total, seen = passes * n * fraction, 0
    for _ in range(passes):
        for xb in blocks():
            take = rng.permutation(len(xb))[:int(np.ceil(fraction * len(xb)))]
            xb = (xb[take] - mean) * np.float32(scale)
            for s in range(0, len(xb), BATCH):
                X = np.ascontiguousarray(xb[s:s + BATCH], dtype=np.float32)
                sanger_batch(W, X, X @ W.T, LEARNING_RATE * max(0.0, 1.0 - seen / total))
                seen += len(X)
    return W


def principal_basis(W: np.ndarray, sample: np.ndarray) -> np.ndarray:
    """float32 (r, d) orthonormal rows spanning the rows of float32 (r, d) W, ordered by
    decreasing variance of float32 (n, d) ``sample`` (centred) along them."""
    q, _ = np.linalg.qr(W.T.astype(np.float64))
    V = sample.astype(np.float64) @ q
    _, vecs = np.linalg.eigh(V.T @ V)
    return np.ascontiguousarray((q @ vecs[:, ::-1]).T, dtype=np.float32)


def itq_rotation(V: np.ndarray, rng: np.random.Generator,
                 iterations: int = ITQ_ITERATIONS) -> np.ndarray:
    """float64 (r, r) orthogonal R minimising ||sign(V R) - V R|| over float (n, r) V
    (iterative quantisation: B = sign(V R), then R from the SVD of V.T B), from a random
    rotation."""
    V = V.astype(np.float64)
    R = random_rotation(V.shape[1], rng)
    for _ in range(iterations):
        B = np.where(V @ R >= 0, 1.0, -1.0)
        u, _, vt = np.linalg.svd(V.T @ B)
        R = u @ vt
    return R


def random_rotation(r: int, rng: np.random.Generator) -> np.ndarray:
    """float64 (r, r): a uniformly distributed rotation (Mezzadri 2007)."""
    q, t = np.linalg.qr(rng.standard_normal((r, r)))
    return q * np.sign(np.diag(t))


def projection(basis: np.ndarray, m: int, rotation: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
    """float32 (m, d) weights from the float32 (r, d) basis: its first min(m, r) rows
    rotated by the float (r', r') rotation (r' = min(m, r)), then random rotations of the
    whole basis, r rows at a time, for the units beyond r."""
    r = len(basis)
    blocks = [rotation.T @ basis[:min(m, r)]]
    for s in range(r, m, r):
        blocks.append(random_rotation(r, rng)[:min(r, m - s)] @ basis)
    return np.ascontiguousarray(np.concatenate(blocks), dtype=np.float32)
