"""Memory: peak RSS of train + add of n x d float32 vectors streamed in blocks, and bytes per
stored vector for each storage.

    python benchmarks/bench_memory.py [--n 1000000] [--d 128] [--block 100000]

Each case runs in a fresh subprocess that generates the data block by block (never all
of it at once), trains the model on one pass per epoch over the blocks
(``BioHashModel.train_blocks``) and adds the blocks; the peak resident set size comes from
``resource.getrusage``. For scale: the raw data would take n * d * 4 bytes.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

from common import machine, print_table

CHILD = r"""
import json, resource, sys, time
import numpy as np
sys.path.insert(0, {bench!r})
from common import synthetic
from biohash_index import BioHashIndex

n, d, block, storage = {n}, {d}, {block}, {storage!r}

def blocks():
    for s in range(0, n, block):
        yield synthetic(min(block, n - s), d, seed=s)

def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

base = rss()
t0 = time.perf_counter()
index = BioHashIndex(d, 16, n_hidden=320, epochs=2, storage=storage, task="labels")
index.model.train_blocks(blocks)
t1 = time.perf_counter()
for xb in blocks():
    index.add(xb)
if storage == "inverted":
    index.search(synthetic(10, d, seed=n), 10)   # builds the posting lists
t2 = time.perf_counter()
lists = index.storage.posting_lists() if storage == "inverted" else ()
extra = sum(a.nbytes for a in lists) + index.storage.id_set.nbytes
print(json.dumps(dict(base=base, peak=rss(), train_s=t1 - t0, add_s=t2 - t1,
                      stored=(index.ntotal * (index.storage.code_size + 8) + extra) / index.ntotal)))
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--block", type=int, default=100_000)
    args = ap.parse_args()
    print(machine())
    bench = str(__import__("pathlib").Path(__file__).resolve().parent)
    rows = []
    for storage in ("flat", "inverted"):
        code = CHILD.format(bench=bench, n=args.n, d=args.d, block=args.block, storage=storage)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        mib = 2.0 ** 20
        rows.append([storage, args.n, args.d, args.block, round(r["base"] / mib),
                     round(r["peak"] / mib), round((r["peak"] - r["base"]) / mib),
                     round(args.n * args.d * 4 / mib), round(args.block * args.d * 4 / mib),
                     round(r["stored"], 1), round(r["train_s"]), round(r["add_s"])])
    print("hash_length 16 of m = 320 units (40-byte codes), 2 epochs; stored bytes/vector = stored "
          "code + 8-byte id + 8-byte id-set entry (+ posting lists); MiB = 2**20 bytes")
    print_table(["storage", "n", "d", "block", "RSS after import MiB", "peak RSS MiB",
                 "peak - import MiB", "raw data MiB", "one block MiB", "stored bytes/vector",
                 "train s", "add s"], rows)


if __name__ == "__main__":
    main()
