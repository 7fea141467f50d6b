"""SIFT-like synthetic vectors at any size, for benchmarks past the real sets' 10,000 vectors.

A mixture of CLUSTERS anisotropic, overlapping Gaussians in d = 128: cluster sizes
Zipf-distributed, centres non-negative and sparse (gamma-distributed, as SIFT histograms are),
each cluster's covariance a random rotation of a power-law spectrum, the vectors clipped at 0
and rounded to integers in [0, 255] like SIFT's bytes. The queries are drawn from the same
mixture; their exact top 100 by L2 come from faiss's ``IndexFlatL2`` (``faiss.knn``).
The constants were set so that 10,000 of these vectors look like siftsmall and bigann10k to
faiss (their figures in brackets): 100th / 1st neighbour distance 1.46 (1.56), recall@10 of
IndexLSH 256 bits 0.58 (0.56), of IndexIVFFlat 100 lists at nprobe 1 and 4 0.66 / 0.83
(0.54 / 0.82-0.87), of IndexPQ 16 bytes 0.68 (0.73-0.77); 29% zeros (23%).

The arrays are cached outside the repository, in ``$BIOHASH_CACHE`` (default
``~/.cache/biohash-index``), as ``sift-like-<n>-<nq>.npz``; the first run builds them (about a
minute for 1,000,000 vectors), later runs load.

    python benchmarks/sift_like.py [--n 1000000] [--nq 1000]   # build and describe
"""
from __future__ import annotations

import argparse
import os
import time

import faiss
import numpy as np

from text_embeddings import CACHE

D, CLUSTERS, SEED = 128, 1024, 0
ZIPF = 0.7        # cluster c (in a random order) has weight (c + 1) ** -ZIPF
DECAY = 0.3       # within a cluster, direction j has standard deviation sigma (j + 1) ** -DECAY
SIGMA = (45.0, 90.0)   # the range of sigma, per cluster
CENTRE_SCALE = 20.0    # mean of a centre's coordinates (gamma, shape 0.6)
BLOCK = 100_000


def mixture(seed: int = SEED):
    """(weights (C,), centres (C, D), factors (C, D, D)): x = max(0, centre + factor @ z)."""
    rng = np.random.default_rng(seed)
    weights = (np.arange(CLUSTERS) + 1.0) ** -ZIPF
    weights = rng.permutation(weights / weights.sum())
    centres = rng.gamma(0.6, CENTRE_SCALE / 0.6, (CLUSTERS, D)).astype(np.float32)
    spectrum = (np.arange(D) + 1.0) ** -DECAY
    sigma = rng.uniform(*SIGMA, CLUSTERS)
    q, _ = np.linalg.qr(rng.standard_normal((CLUSTERS, D, D)))
    factors = (q * (sigma[:, None, None] * spectrum[None, None, :])).astype(np.float32)
    return weights, centres, factors


def draw(n: int, stream: int, seed: int = SEED) -> np.ndarray:
    """float32 (n, D) vectors of the mixture; ``stream`` separates the database from the
    queries (different random numbers, the same mixture)."""
    weights, centres, factors = mixture(seed)
    x = np.empty((n, D), np.float32)
    for b, start in enumerate(range(0, n, BLOCK)):
        rng = np.random.default_rng([seed, stream, b])
        m = min(BLOCK, n - start)
        c = rng.choice(CLUSTERS, m, p=weights)
        z = rng.standard_normal((m, D), np.float32)
        block = x[start:start + m]
        for k in np.unique(c):
            rows = np.flatnonzero(c == k)
            block[rows] = centres[k] + z[rows] @ factors[k].T
    return np.clip(np.rint(x), 0, 255)


def load(n: int = 1_000_000, nq: int = 1000):
    """(xb float32 (n, 128), xq float32 (nq, 128), gt int64 (nq, 100)): database, queries and
    the queries' exact top 100 by L2; built and cached on first use."""
    path = CACHE / f"sift-like-{n}-{nq}.npz"
    if not path.exists():
        t0 = time.perf_counter()
        xb, xq = draw(n, 0), draw(nq, 1)
        _, gt = faiss.knn(xq, xb, 100)
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, xb=xb, xq=xq, gt=gt)
        os.replace(tmp, path)
        print(f"built {path.name} in {time.perf_counter() - t0:.0f} s", flush=True)
    with np.load(path) as f:
        return f["xb"], f["xq"], f["gt"].astype(np.int64)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--nq", type=int, default=1000)
    args = ap.parse_args(argv)
    xb, xq, gt = load(args.n, args.nq)
    print(f"{len(xb):,} database vectors, {len(xq)} queries, d={xb.shape[1]}, cached in {CACHE}; "
          f"mean {xb.mean():.1f}, zeros {np.mean(xb == 0):.0%}, max {xb.max():.0f}")


if __name__ == "__main__":
    main()
