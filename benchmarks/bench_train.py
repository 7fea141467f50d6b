"""One epoch of the learning rule: ours vs its matrix products vs Krotov & Hopfield's loop.

    python benchmarks/bench_train.py [--repeat 5]

Per configuration (n training vectors, d, m hidden units, k = m / 20, batch 100, p, delta,
spread) it times:
- ours: ``BioHashModel.epoch`` over the mini-batches of one epoch;
- prep: making those batches (shuffle, centre, normalise: ``BioHashModel.batches``), which
  training repeats each epoch; reported apart because every method below takes the same
  prepared batches;
- matmul: numpy ``X_b @ W.T`` for the same batches, the products the epoch cannot avoid,
  into one reused buffer as the epoch computes them (its fastest form: a new result per
  batch can cost page faults);
- K&H numpy: a plain numpy transcription of the loop of Krotov & Hopfield's published
  notebook (full argsort per sample, dense (m, B) g matrix, dense (m, d) update), in
  float64 as the notebook computes ("K&H f64"), and the same loop in float32 ("K&H f32").
  With spread > 0 the loop puts the rule's factor on each of the top ranks instead of 1 on
  the first only (spread = 0 is the notebook's rule exactly).
It then checks, step by step, that ours and K&H f64 compute the same update (``step_check``).

``--projection``: instead, the neighbors task's training at ``--n`` vectors (synthetic
clusters, d = 128 and 384), ``--bytes`` of codes: train + add with random rotations and the mean
learned (``projection="random"``) against train and train + add with the learned projection
(the default), CPU seconds of this process (``time.process_time``, one thread: ``--threads
1``), median of ``--repeat`` runs timed in turns.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from biohash_index import BioHashIndex, BioHashModel, BioHashParams
from biohash_index._learning_kernels import rank_units
from biohash_index._model import p_weights
from common import (add_threads_option, apply_threads, interleaved_medians, machine, print_table,
                    sift_base, synthetic)


def kh_epoch(W, batches, p, g, lr, prec=1e-30):
    """The inner loop of Krotov & Hopfield's notebook (unsupervised learning rule), in numpy;
    g: the factor of the unit at each rank (the notebook: 1 at the first, -delta at ``rank``)."""
    for X in batches:
        inputs = X.T
        tot = (np.sign(W) * np.abs(W) ** (p - 1)) @ inputs            # (m, B)
        y = np.argsort(tot, axis=0)
        yl = np.zeros_like(tot)
        cols = np.arange(X.shape[0])
        for r, f in enumerate(g):
            yl[y[-1 - r], cols] = f
        xx = np.sum(yl * tot, axis=1)
        ds = yl @ X - xx[:, None] * W
        nc = max(np.abs(ds).max(), prec)
        W += lr * ds / nc
    return W


def bench(x, m, p, delta, spread, repeat):
    n, d = x.shape
    prm = BioHashParams(d=d, hash_length=max(1, m // 20), n_hidden=m, p=p, delta=delta,
                        spread=spread, epochs=1, batch_size=100, seed=0)  # the notebook's batch
    model = BioHashModel(prm)
    _, mean, W0 = model.init_weights(lambda: (x,), np.random.default_rng(0))
    batches = list(model.batches(lambda: (x,), mean, np.random.default_rng(1)))
    lr, g = prm.learning_rate, prm.rank_factors()

    def ours():
        model.epoch(W0.copy(), iter(batches), lr, n)

    def prep():
        for _ in model.batches(lambda: (x,), mean, np.random.default_rng(1)):
            pass

    def matmul():
        out = np.empty((len(batches[0]), m), np.float32)
        for xb in batches:
            np.matmul(xb, W0.T, out=out[:len(xb)])

    W64, batches64 = W0.astype(np.float64), [xb.astype(np.float64) for xb in batches]
    ours()  # compile / load the numba cache outside the timing
    t = interleaved_medians({
        "ours": ours, "matmul": matmul, "prep": prep,
        "f64": lambda: kh_epoch(W64.copy(), batches64, p, g, lr),
        "f32": lambda: kh_epoch(W0.copy(), batches, p, g, lr)}, repeat)
    err, swaps, gap = step_check(model, W0, batches, p, g, lr)
    return [n, d, m, p, delta, spread, 1e3 * t["ours"], 1e3 * t["matmul"], t["ours"] / t["matmul"],
            1e3 * t["prep"], 1e3 * t["f64"], t["f64"] / t["ours"], t["f32"] / t["ours"],
            f"{err:.1e}", swaps, f"{gap:.0e}" if swaps else "-"]


def step_check(model, W0, batches, p, g, lr):
    """Ours against K&H f64, one step at a time from the same (our) weights.

    Over one epoch: the largest weight difference after a step whose ranks agree; the number
    of (sample, rank) choices where float32 ranks another unit than float64 does; and the
    largest float64 gap, relative to the value, between the two units such a choice swapped
    (a gap at float32 rounding, ~1e-7, is a tie that float32 cannot resolve).
    """
    err, swaps, gap = 0.0, 0, 0.0
    W = W0.copy()
    for xb in batches:
        W64 = W.astype(np.float64)
        tot64 = xb.astype(np.float64) @ (np.sign(W64) * np.abs(W64) ** (p - 1)).T
        ref = np.argsort(-tot64, axis=1, kind="stable")[:, :len(g)]
        top = rank_units(xb @ p_weights(W, p).T, len(g))
        kh_epoch(W64, [xb.astype(np.float64)], p, g, lr)
        model.epoch(W, iter([xb]), lr, len(xb))
        b, r = np.nonzero(top != ref)
        if len(b):
            swaps += len(b)
            v = tot64[b, ref[b, r]]
            gap = max(gap, float(np.max(np.abs(v - tot64[b, top[b, r]]) / np.abs(v))))
        else:
            err = max(err, float(np.abs(W - W64).max()))
    return err, swaps, gap


def cpu_seconds(fn) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def projection_table(n: int, byte_sizes: list[int], repeat: int) -> None:
    """Train (+ add) CPU seconds of the neighbors task, random rotations against learned."""
    rows = []
    for d in (128, 384):
        x = synthetic(n, d)
        for nbytes in byte_sizes:
            def build(projection, add):
                def run():
                    index = BioHashIndex(d, 4 * nbytes, projection=projection)
                    index.train(x)
                    if add:
                        index.add(x)
                return run
            build("learned", False)()   # compile / load the numba cache outside the timing
            runs = {"random": build("random", True), "learned": build("learned", False),
                    "learned+add": build("learned", True)}
            t = {name: [] for name in runs}
            for _ in range(repeat):
                for name, run in runs.items():
                    t[name].append(cpu_seconds(run))
            t = {name: float(np.median(v)) for name, v in t.items()}
            rows.append([n, d, nbytes, t["random"], t["learned"], t["learned+add"],
                         t["learned"] / t["random"], t["learned+add"] / t["random"]])
    print_table(["n", "d", "bytes", "random: train+add s", "learned: train s",
                 "learned: train+add s", "learned train / random train+add",
                 "learned train+add / random train+add"], rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--projection", action="store_true",
                    help="time the neighbors task's training instead (learned projection)")
    ap.add_argument("--n", type=int, default=100_000, help="vectors of --projection")
    ap.add_argument("--bytes", default="8,16,32,64", help="code bytes of --projection")
    add_threads_option(ap)
    args = ap.parse_args()
    apply_threads(args.threads)
    print(machine())
    if args.projection:
        print(f"synthetic clusters, {args.n} vectors; CPU seconds, medians of {args.repeat} runs")
        projection_table(args.n, [int(b) for b in args.bytes.split(",")], args.repeat)
        return
    x = sift_base()
    data = "siftsmall base" if x is not None else "synthetic clusters"
    if x is None:
        x = synthetic(10000, 128)
    print(f"data: {data}, {x.shape}; batch 100; times are medians of {args.repeat} runs, all timed in turns (ms)")
    configs = [(320, 2.0, 0.0, 0.0), (1280, 2.0, 0.4, 0.0), (2560, 2.0, 0.0, 0.0),
               (1280, 3.0, 0.4, 0.0), (320, 1.5, 0.0, 0.03), (1280, 1.5, 0.0, 0.03)]
    rows = [bench(x, *config, args.repeat) for config in configs]
    print_table(["n", "d", "m", "p", "delta", "spread", "ours ms", "matmul ms", "ours/matmul",
                 "prep ms", "K&H f64 ms", "K&H f64/ours", "K&H f32/ours",
                 "max |W diff| per step vs f64", "rank swaps", "their f64 gap"], rows)


if __name__ == "__main__":
    main()
