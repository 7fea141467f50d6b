"""``add_with_ids`` of a batch into a large index: its cost must not grow with ntotal.

    python benchmarks/bench_add_ids.py [--sizes 10000 100000 1000000] [--batch 1000]
                                       [--repeat 7] [--storages flat ivf inverted]

Each index is filled with N random codes under random distinct ids through its storage
(quick; no vectors to encode), then timed: ``BioHashIndex.add_with_ids`` of a batch of
float vectors under new ids (validation, the clash check against the stored ids, encoding,
storing) vs the faiss ``add_with_ids`` of the same codes and ids into the faiss index of
the same kind holding N codes: ``IndexBinaryIDMap(IndexBinaryFlat)`` for flat and inverted
storage, ``IndexBinaryIVF`` with our trained centroids for IVF. Columns: "encode" times
``sa_encode`` of the batch alone (part of "ours", independent of N); "check+store" times
the rest of ``add_with_ids`` on the encoded batch (``check_new_ids`` against the storage's
``IdSet``, then ``storage.add``), which stores the same codes as faiss; "isin(all ids)"
times the clash check add_with_ids made before the ids were kept in an ``IdSet``,
``np.isin(ids, storage.ids())``, a pass over all N stored ids. Every timed add uses new
ids, so during a row our index grows by 2 * repeat * batch codes, faiss's by half that.
"IdSet bytes/vector": the memory the id set adds per stored vector.
"""
from __future__ import annotations

import argparse

import faiss
import numpy as np

from biohash_index import BioHashIndex
from biohash_index._validation import check_new_ids
from common import (add_threads_option, apply_threads, interleaved_medians, machine,
                    print_table, synthetic)

D, HASH_LENGTH, NLIST = 128, 32, 256


def trained_index(storage: str) -> BioHashIndex:
    index = BioHashIndex(D, HASH_LENGTH, storage=storage, nlist=NLIST, epochs=1, task="labels")
    index.train(synthetic(40 * NLIST, D, seed=1))
    return index


def faiss_twin(index: BioHashIndex) -> faiss.IndexBinary:
    """An empty faiss index of the kind our storage wraps (IVF: the same centroids)."""
    if index.storage.kind == "ivf":
        return faiss.clone_binary_index(index.storage.index)
    return faiss.IndexBinaryIDMap(faiss.IndexBinaryFlat(index.storage.nbits))


def filled(storage: str, n: int, rng):
    """Our index and its faiss twin, both holding the same n random codes under random
    ids in [0, 2n)."""
    index = trained_index(storage)
    twin = faiss_twin(index)
    ids = rng.permutation(2 * n)[:n].astype(np.int64)
    for s in range(0, n, 100_000):
        codes = rng.integers(0, 256, (min(100_000, n - s), index.storage.code_size), np.uint8)
        index.storage.add(codes, ids[s:s + 100_000])
        twin.add_with_ids(codes, ids[s:s + 100_000])
    return index, twin


def row(storage: str, n: int, batch: int, repeat: int, rng) -> list:
    index, twin = filled(storage, n, rng)
    xb = synthetic(batch, D, seed=2)
    codes = index.sa_encode(xb)                       # stored zero-padded, as ours stores them
    codes = np.pad(codes, ((0, 0), (0, index.storage.code_size - codes.shape[1])))
    new = rng.permutation(np.arange(2 * n, 2 * n + 2 * repeat * batch)).reshape(2, repeat, batch)
    ours_ids, store_ids = iter(new[0]), iter(new[1])
    twin_ids = iter(new[0])                           # faiss gets the ids ours got

    def check_and_store():
        ids = next(store_ids)
        index.storage.add(codes, check_new_ids(ids, batch, index.storage.id_set))

    t = interleaved_medians({
        "ours": lambda: index.add_with_ids(xb, next(ours_ids)),
        "faiss": lambda: twin.add_with_ids(codes, next(twin_ids)),
        "encode": lambda: index.sa_encode(xb),
        "store": check_and_store,
        "isin": lambda: np.isin(new[0, 0], index.storage.ids()),
    }, repeat)
    assert index.ntotal == n + 2 * repeat * batch
    assert twin.ntotal == n + repeat * batch
    ms = {k: 1e3 * v for k, v in t.items()}
    return [storage, n, ms["ours"], ms["encode"], ms["faiss"], ms["ours"] / ms["faiss"],
            ms["store"], ms["store"] / ms["faiss"], ms["isin"],
            index.storage.id_set.nbytes / index.ntotal]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--storages", nargs="+", default=["flat", "ivf", "inverted"])
    add_threads_option(ap)
    args = ap.parse_args()
    apply_threads(args.threads)
    print(machine())
    rng = np.random.default_rng(0)
    rows = [row(storage, n, args.batch, args.repeat, rng)
            for storage in args.storages for n in args.sizes]
    print(f"\nadd_with_ids of {args.batch} vectors (d={D}, k={HASH_LENGTH}) into an index "
          f"holding N codes, median of {args.repeat} (ms)")
    print_table(["storage", "N", "ours", "encode", "faiss", "ours/faiss", "check+store",
                 "check+store/faiss", "isin(all ids)", "IdSet bytes/vector"],
                rows)


if __name__ == "__main__":
    main()
