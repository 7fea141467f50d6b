"""Baseline hashes for the benchmarks, all with the ``train / add / search`` API of faiss.

- ``lsh(d, nbits)``: faiss ``IndexLSH`` with random rotation and trained thresholds;
- ``itq(d, nbits)``: faiss ``"ITQ{nbits},LSH"`` (PCA to nbits, ITQ rotation, sign bits);
- ``FlyHash(d, k)``: Dasgupta, Stevens & Navlakha, Science 2017: a random sparse binary
  projection to m = 10 d units, each summing a random 10% of the inputs, and a
  winner-take-all code of the k units with the largest sums.

All three learn the training mean and centre the data with it, as BENCHMARKS.md prescribes.
``make_index(method, d, k)`` builds any of them, or a ``BioHashIndex(task="labels")``.
"""
from __future__ import annotations

import faiss
import numpy as np

from biohash_index import BioHashIndex
from biohash_index._encoding_kernels import top_k_codes
from biohash_index._validation import check_vectors

METHODS = ("BioHash", "LSH", "ITQ", "FlyHash")


def lsh(d: int, nbits: int) -> faiss.Index:
    """faiss ``IndexLSH(d, nbits, True, True)`` on centred data."""
    return faiss.IndexPreTransform(faiss.CenteringTransform(d),
                                   faiss.IndexLSH(d, nbits, True, True))


def itq(d: int, nbits: int) -> faiss.Index:
    """faiss ``"ITQ{nbits},LSH"`` on centred data (nbits <= d)."""
    return faiss.IndexPreTransform(faiss.CenteringTransform(d),
                                   faiss.index_factory(d, f"ITQ{nbits},LSH"))


class FlyHash:
    """FlyHash: k winners out of m = expansion * d sparse binary random projections.

    Codes are m-bit, packed like faiss binary codes and searched by Hamming distance in a
    faiss ``IndexBinaryFlat``.
    """

    def __init__(self, d: int, hash_length: int, expansion: int = 10, sampling: float = 0.1,
                 seed: int = 0):
        self.d, self.hash_length, self.n_hidden = d, hash_length, expansion * d
        rng = np.random.default_rng(seed)
        n_in = max(1, int(round(sampling * d)))
        self.projection = np.zeros((self.n_hidden, d), np.float32)  # (m, d), n_in ones a row
        rows = np.repeat(np.arange(self.n_hidden), n_in)
        cols = np.argsort(rng.random((self.n_hidden, d)), axis=1)[:, :n_in].ravel()
        self.projection[rows, cols] = 1.0
        self.mean = None
        self.index = faiss.IndexBinaryFlat(8 * self.code_size)

    @property
    def code_size(self) -> int:
        return (self.n_hidden + 7) // 8

    def train(self, x) -> None:
        self.mean = check_vectors(x, self.d).mean(axis=0)

    def sa_encode(self, x, block: int = 2048) -> np.ndarray:
        """uint8 (n, code_size) codes: the k largest of the m projections of x - mean."""
        x = check_vectors(x, self.d)
        return np.concatenate([
            top_k_codes((x[s:s + block] - self.mean) @ self.projection.T, self.hash_length,
                        self.code_size) for s in range(0, max(len(x), 1), block)])

    def add(self, x) -> None:
        self.index.add(self.sa_encode(x))

    def search(self, xq, k: int):
        D, I = self.index.search(self.sa_encode(xq), k)
        return D.astype(np.float32), I


def make_index(method: str, d: int, k: int, seed: int = 0):
    """An untrained index of the given method at hash length k (k bits for LSH and ITQ);
    BioHash with the defaults of retrieval by label (``task="labels"``)."""
    if method == "BioHash":
        return BioHashIndex(d, k, task="labels", seed=seed)
    if method == "LSH":
        return lsh(d, k)
    if method == "ITQ":
        return itq(d, k)
    if method == "FlyHash":
        return FlyHash(d, k, seed=seed)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def code_size(index) -> int:
    """Bytes per stored code of any index that ``make_index`` builds."""
    if isinstance(index, faiss.IndexPreTransform):
        return index.sa_code_size()
    return index.code_size
