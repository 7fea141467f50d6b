"""Routing quality of IVF lists: the share of each query's true top 10 found among its
candidates, against the fraction of the database scanned, for the lists of

- the learned router (``router="learned"``: Krotov-Hopfield units), each vector listed under
  its top unit (assign 1) or its top 2 (assign 2);
- faiss k-means (the quantizer of ``IndexIVFFlat``, trained on the database);
- random orthonormal units (``router="random"``, the ablation);

all with the same nlist (``auto_nlist`` of the database size), each share the mean over
``--seeds`` seeds of the routers and of k-means. A query scans its lists in
probe order until it has scanned the fraction (copies of multi-assigned vectors count);
true top 10: exact L2 (inner product for the text set, whose vectors have unit length).
The routers are trained as ``BioHashIndex(storage="ivf")`` trains them, on the database.

Then recall@10 of ``BioHashIndex`` (task "neighbors", storage "ivf", learned router) against
flat storage at a few nprobe, and at the learned default (``nprobe_``).

    python benchmarks/bench_routing.py [--sets siftsmall,bigann10k,fmnistsmall,text]
"""
from __future__ import annotations

import argparse

import faiss
import numpy as np

from biohash_index import BioHashIndex
from biohash_index._router import auto_nlist
from biohash_index.datasets import read_bvecs, read_fvecs, read_ivecs
from biohash_index.evaluation import recall_at_k
import text_embeddings
from common import DATA, add_threads_option, apply_threads, machine, print_table, sets_present

FRACTIONS = (0.01, 0.02, 0.035, 0.07)
HASH_LENGTH = 32
RECALL_HASH_LENGTHS = (32, 128)
TEXT_N, TEXT_QUERIES = 24000, 1000   # the text set: MiniLM passages (text_embeddings.py)


def load(name):
    """(xb, xq, gt int64 (nq, >= 10)) of a set, or None if absent."""
    if name == "text":   # only once built (python benchmarks/text_embeddings.py)
        path = text_embeddings.CACHE / f"minilm-{TEXT_N}-{TEXT_QUERIES}.npz"
        if not path.exists():
            print(f"\ntext: skipped ({path.name} not built: python benchmarks/text_embeddings.py)")
            return None
        return text_embeddings.load(TEXT_N, TEXT_QUERIES)
    folder = DATA / name
    read = read_bvecs if name == "bigann10k" else read_fvecs
    ext = "bvecs" if name == "bigann10k" else "fvecs"
    xb = read(folder / f"{name}_base.{ext}").astype(np.float32)
    xq = read(folder / f"{name}_query.{ext}").astype(np.float32)
    return xb, xq, read_ivecs(folder / f"{name}_groundtruth.ivecs").astype(np.int64)


def coverage(probe_order, lists_of, n, gt, fractions):
    """Share of gt (nq, 10) found in each query's lists scanned in ``probe_order`` (nq, nlist)
    until that fraction of n entries is scanned; lists_of: int64 (n, assign)."""
    nlist = probe_order.shape[1]
    sizes = np.bincount(lists_of.ravel(), minlength=nlist)
    scanned = np.cumsum(sizes[probe_order], axis=1)             # entries after each probe
    rank = np.argsort(probe_order, axis=1)                      # probe rank of each list
    first = np.take_along_axis(rank, lists_of[gt].reshape(len(gt), -1), 1)
    first = first.reshape(*gt.shape, -1).min(axis=2)            # (nq, 10) rank finding each
    out = []
    for f in fractions:
        n_probed = (scanned < f * n).sum(axis=1) + 1            # lists until f is reached
        out.append(float((first < n_probed[:, None]).mean()))
    return out


def router_lists(xb, xq, kind, assign, nlist, seed):
    index = BioHashIndex(xb.shape[1], HASH_LENGTH, storage="ivf", router=kind, assign=assign,
                         nlist=nlist, seed=seed)
    index.train(xb)
    router = index.storage.router
    return router.probe(xq, nlist), router.lists_of(xb)


def kmeans_lists(xb, xq, nlist, seed):
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatL2(xb.shape[1]), xb.shape[1], nlist)
    ivf.cp.seed = seed
    ivf.cp.min_points_per_centroid = 1   # small sets: no warning, the same clustering
    ivf.train(xb)
    _, order = ivf.quantizer.search(xq, nlist)
    _, lists = ivf.quantizer.search(xb, 1)
    return order, lists


def routing_table(sets, seeds):
    rows = []
    for name, (xb, xq, gt) in sets.items():
        n, gt10 = len(xb), gt[:, :10]
        nlist = auto_nlist(n)
        runs = {"learned, assign 1": lambda s: router_lists(xb, xq, "learned", 1, nlist, s),
                "learned, assign 2": lambda s: router_lists(xb, xq, "learned", 2, nlist, s),
                "faiss k-means (IndexIVFFlat)": lambda s: kmeans_lists(xb, xq, nlist, s),
                "random units": lambda s: router_lists(xb, xq, "random", 1, nlist, s)}
        for what, lists_of in runs.items():
            shares = np.mean([coverage(*lists_of(s), n, gt10, FRACTIONS) for s in seeds], axis=0)
            rows.append([f"{name} (n={n}, nlist={nlist})", what, *map(float, shares)])
    print_table(["set", "lists", *(f"{100 * f:g}% scanned" for f in FRACTIONS)], rows)


def recall_table(sets):
    rows = []
    for (name, (xb, xq, gt)), h in ((s, h) for s in sets.items() for h in RECALL_HASH_LENGTHS):
        flat = BioHashIndex(xb.shape[1], h)
        flat.train(xb)
        flat.add(xb)
        r_flat = recall_at_k(flat.search(xq, 10)[1], gt, 10)
        ivf = BioHashIndex(xb.shape[1], h, storage="ivf")
        ivf.train(xb)
        ivf.add(xb)
        nlist, default = ivf.storage.nlist, ivf.nprobe
        for nprobe in sorted({1, 2, 4, 8, 16, 32, default}):
            if nprobe > nlist:
                continue
            r = recall_at_k(ivf.search(xq, 10, params={"nprobe": nprobe})[1], gt, 10)
            rows.append([name, h, nlist, f"{nprobe}{' (default)' if nprobe == default else ''}",
                         f"{nprobe / nlist:.3f}", f"{r_flat:.3f}", f"{r:.3f}", f"{r / r_flat:.3f}"])
    print_table(["set", "hash_length", "nlist", "nprobe", "lists probed", "recall@10 flat", "recall@10 ivf",
                 "ivf / flat"], rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="siftsmall,bigann10k,fmnistsmall,text")
    ap.add_argument("--seeds", type=int, default=3, help="seeds the routing shares average")
    add_threads_option(ap)
    args = ap.parse_args(argv)
    apply_threads(args.threads)
    print(machine())
    names = args.sets.split(",")
    local = [n for n in names if n != "text"]
    present = list(sets_present(",".join(local))) if local else []
    sets = {n: load(n) for n in names if n == "text" or n in present}
    sets = {n: s for n, s in sets.items() if s is not None}
    print(f"\nShare of the true top 10 among the candidates, by fraction of the database scanned "
          f"(BioHash hash_length={HASH_LENGTH}, task neighbors)\n")
    routing_table(sets, range(args.seeds))
    print("\nRecall@10 of BioHashIndex, storage ivf (learned router) against flat\n")
    recall_table(sets)


if __name__ == "__main__":
    main()
