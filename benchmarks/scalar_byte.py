"""Would one byte per vector of |x - mean| help? (issue 22, item 3)

    python benchmarks/scalar_byte.py [--sets siftsmall,bigann10k,fmnistsmall,text]
        [--bytes 8,16,32] [--threads 1]

Per set and code size, recall@10 of:
- ``BioHashIndex(d, 4 * bytes)`` (defaults: learned projection, weighted re-rank of the
  Hamming shortlist): the codes alone, ``bytes`` per vector;
- its top ``SHORTLIST`` by weighted distance re-ranked by the L2 distance to
  ``mean + s * u``, u the code's unit direction (``sa_decode`` less the mean) and s the
  length |x - mean| quantised to one byte (256 log-spaced levels between the smallest and
  largest length in the base), ``bytes + 1`` per vector;
- the same re-rank with s = the mean length for every vector (no extra byte), which
  separates what the byte adds from what the decoded re-rank itself does;
- the plain codes at ``bytes + 1`` bytes (``BioHashIndex(d, 4 * (bytes + 1))``), what the
  byte would buy if spent on bits instead.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ann_text import load_set  # noqa: E402
from common import DATA, add_threads_option, apply_threads, machine, print_table  # noqa: E402

from biohash_index import BioHashIndex  # noqa: E402
from biohash_index.evaluation import recall_at_k  # noqa: E402

SHORTLIST = 80
K = 10


def byte_lengths(lengths: np.ndarray) -> np.ndarray:
    """float (n,): lengths rounded to 256 log-spaced levels between their extremes."""
    lo, hi = np.log(max(lengths.min(), 1e-12)), np.log(max(lengths.max(), 1e-12))
    q = np.round((np.log(np.maximum(lengths, 1e-12)) - lo) / max(hi - lo, 1e-12) * 255)
    return np.exp(lo + q / 255 * (hi - lo))


def rerank(index, xb, xq, lengths: np.ndarray) -> np.ndarray:
    """I (nq, K): the SHORTLIST best of ``index`` re-ranked by |q - (mean + s u)|^2."""
    mean = index.model.mean_
    codes = index.sa_encode(xb)
    u = index.sa_decode(codes) - mean
    u /= np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-12)
    xhat = mean + lengths[:, None] * u
    I = index.search(xq, SHORTLIST)[1]
    D = np.einsum("qcd,qcd->qc", xhat[I] - xq[:, None], xhat[I] - xq[:, None])
    return np.take_along_axis(I, np.argsort(D, axis=1, kind="stable")[:, :K], axis=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="siftsmall,bigann10k,fmnistsmall,text")
    ap.add_argument("--bytes", default="8,16,32")
    ap.add_argument("--data", default=str(DATA))
    add_threads_option(ap)
    args = ap.parse_args()
    apply_threads(args.threads)
    print(machine())
    rows = []
    for name in args.sets.split(","):
        data = load_set(name, Path(args.data))
        if data is None:
            continue
        xb, xq, gt = data
        d = xb.shape[1]
        for nbytes in [int(b) for b in args.bytes.split(",")]:
            index = BioHashIndex(d, 4 * nbytes)
            index.train(xb)
            index.add(xb)
            lengths = np.linalg.norm(xb - index.model.mean_, axis=1)
            plain = recall_at_k(index.search(xq, K)[1], gt, K)
            with_byte = recall_at_k(rerank(index, xb, xq, byte_lengths(lengths)), gt, K)
            no_byte = recall_at_k(rerank(index, xb, xq, np.full(len(xb), lengths.mean())),
                                  gt, K)
            more = BioHashIndex(d, 4 * (nbytes + 1))
            more.train(xb)
            more.add(xb)
            more_bits = recall_at_k(more.search(xq, K)[1], gt, K)
            rows.append([name, nbytes, f"{plain:.3f}", f"{no_byte:.3f}", f"{with_byte:.3f}",
                         f"{more_bits:.3f}"])
    print_table(["set", "code bytes", "codes", "decoded re-rank, no byte",
                 "decoded re-rank + length byte (bytes + 1)", "codes at bytes + 1"], rows)


if __name__ == "__main__":
    main()
