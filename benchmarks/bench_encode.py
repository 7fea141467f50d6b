"""Encoding (``sa_encode``/``add``): ours vs the matrix product alone.

    python benchmarks/bench_encode.py [--n 100000] [--repeat 5]

ours: ``BioHashModel.encode`` (projection in blocks of about 1 MiB of inputs, then the fused
top-k selection and bit packing; with several threads, each thread takes whole blocks and
projects them with one BLAS thread); matmul: the (n, d) x (d, m) product alone,
which encoding cannot avoid, computed in the same blocks into one reused buffer (its fastest
form here: one whole (n, m) product pays for page faults on the large result).
"""
from __future__ import annotations

import argparse

import numpy as np

from biohash_index import BioHashModel, BioHashParams
from biohash_index._model import encode_block_rows
from common import (add_threads_option, apply_threads, interleaved_medians, machine, print_table,
                    synthetic)


def blocked_matmul(x, W):
    """x @ W.T block by block into one buffer, as ``encode`` computes it."""
    rows = encode_block_rows(len(W))
    out = np.empty((rows, len(W)), np.float32)
    for s in range(0, len(x), rows):
        xs = x[s:s + rows]
        np.matmul(xs, W.T, out=out[:len(xs)])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    add_threads_option(ap)
    args = ap.parse_args()
    apply_threads(args.threads)
    print(machine())
    print(f"n = {args.n} synthetic vectors; times are medians of {args.repeat} runs (ms)")
    rows = []
    for d, k, m in [(128, 16, 320), (128, 32, 640), (128, 64, 1280), (784, 32, 640)]:
        x = synthetic(args.n, d)
        model = BioHashModel(BioHashParams(d=d, hash_length=k, n_hidden=m, epochs=1))
        model.train(x[:2000])
        W = model.weights_
        model.encode(x[:10])  # compile / load the numba cache outside the timing
        t = interleaved_medians({"ours": lambda: model.encode(x),
                                 "matmul": lambda: blocked_matmul(x, W)}, args.repeat)
        rows.append([d, k, m, 1e3 * t["ours"], 1e3 * t["matmul"], t["ours"] / t["matmul"],
                     args.n / t["ours"]])
    print_table(["d", "k", "m", "ours ms", "matmul ms", "ours/matmul", "ours vectors/s"], rows)


if __name__ == "__main__":
    main()
