"""Uniform random samples of rows seen block by block, in bounded memory (a leaf module):
training's initial weights (``BioHashModel``) and IVF's clustering sample (``_streaming``)."""
from __future__ import annotations

from typing import Iterable

import numpy as np


class RowSample:
    """A uniform random sample of at most n_max rows of blocks seen one at a time: every row
    gets a random key and the rows with the smallest keys are kept (memory n_max + a block)."""

    def __init__(self, n_max: int, d: int):
        self.n_max = n_max
        self.keys = np.zeros(0)
        self.rows = np.zeros((0, d), np.float32)

    def add(self, xb: np.ndarray, rng: np.random.Generator) -> None:
        if not self.n_max:   # keeps nothing: no copy of the block either
            return
        keys = np.concatenate([self.keys, rng.random(len(xb))])
        rows = np.concatenate([self.rows, xb])
        keep = np.argsort(keys, kind="stable")[:self.n_max]
        self.keys, self.rows = keys[keep], rows[keep]


def uniform_sample(blocks: Iterable[np.ndarray], n_max: int,
                   rng: np.random.Generator) -> np.ndarray:
    """A uniform random sample of at most n_max rows from a pass over (n_i, d) blocks,
    in memory O(n_max + block) (see ``RowSample``)."""
    sample = None
    for xb in blocks:
        if sample is None:
            sample = RowSample(n_max, xb.shape[1])
        sample.add(xb, rng)
    if sample is None:
        raise ValueError("the source holds no blocks")
    return sample.rows
