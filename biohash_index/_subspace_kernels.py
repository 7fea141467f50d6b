"""Numba kernel of Sanger's rule (the generalised Hebbian algorithm), which learns the top
principal directions of a stream of centred inputs.

The Python side (``_subspace.py``) computes the unit outputs of a mini-batch with one BLAS
product, ``y = X @ W.T``; ``sanger_batch`` then applies, sample by sample, the local update

    dW_i = lr * y_i * (x - sum_{j <= i} y_j W_j) / max(1, |x|^2)

each unit learning from its output and the part of the input that it and the units before
it leave unexplained, so unit i converges to the i-th principal direction (unit norm). The
step shrinks for inputs longer than 1 (the Python side scales the data to a mean squared
norm of 1), which keeps the rule stable on outliers.
"""
import numpy as np
from numba import njit


@njit(cache=True, nogil=True, fastmath=True)
def sanger_batch(W, X, Y, lr):
    """One mini-batch of Sanger's rule on W in place.

    W: float32 (r, d) weights; X: float32 (B, d) inputs; Y: float32 (B, r) their outputs
    ``X @ W.T`` at the start of the batch; lr: the learning rate.
    """
    r, d = W.shape
    e = np.empty(d, np.float32)
    for b in range(X.shape[0]):
        sq = np.float32(0)
        for j in range(d):
            e[j] = X[b, j]
            sq += e[j] * e[j]
        rate = np.float32(lr) / max(np.float32(1), sq)
        for i in range(r):
            yi = Y[b, i]
            step = rate * yi
            w = W[i]
            for j in range(d):
                e[j] -= yi * w[j]
                w[j] += step * e[j]
