"""Memory: peak RSS of train + add of n x d float32 vectors streamed in blocks, bytes per
stored vector for each storage, and the peak bytes per search result (what ``check_k`` counts).

    python benchmarks/bench_memory.py [--n 1000000] [--d 128] [--block 100000]
    python benchmarks/bench_memory.py --results    # bytes per search result only (Linux)

Each case runs in a fresh subprocess that generates the data block by block (never all
of it at once), trains the model on one pass per epoch over the blocks
(``BioHashModel.train_blocks``) and adds the blocks; the peak resident set size comes from
``resource.getrusage``. For scale: the raw data would take n * d * 4 bytes.

Bytes per search result: a subprocess per search path fills an index, resets its peak
resident set size (``/proc/self/clear_refs``), searches nq queries for k results and divides
the growth of the peak by nq * k; with k > ntotal / 8 (the asymmetric shortlist is then k)
and k < ntotal / 8 (a shortlist of 8 k: the bytes of the candidates beyond k).
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


RESULTS_CHILD = r"""
import json
import numpy as np
from biohash_index import BioHashIndex

path, n, nq, k = {path!r}, {n}, {nq}, {k}
x = np.random.default_rng(0).standard_normal((n, 32)).astype(np.float32)
kw = dict(storage="inverted") if path == "inverted" else {{}}
index = BioHashIndex(32, 8, n_hidden=64, epochs=1, task="neighbors" if path == "asymmetric"
                     else "labels", **kw)
index.train(x[:5000])
index.add(x)
xq = x[:nq]
del x
index.search(xq, 10)

def status(key):
    return int(next(ln for ln in open("/proc/self/status") if ln.startswith(key)).split()[1]) * 1024

before = status("VmRSS:")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")   # the peak (VmHWM) starts again from the current size
index.search(xq, k)
print(json.dumps((status("VmHWM:") - before) / (nq * k)))
"""


def results_table() -> None:
    """Peak bytes per (query, result) of each search path (Linux: /proc/self/clear_refs)."""
    rows = []
    for path in ("hamming", "inverted", "asymmetric"):
        for n, nq, k in ((3000, 4, 4_000_000), (1_600_000, 40, 200_000)):
            code = RESULTS_CHILD.format(path=path, n=n, nq=nq, k=k)
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 check=True).stdout
            rows.append([path, n, nq, k, round(json.loads(out.strip().splitlines()[-1]), 1)])
    print("peak bytes per search result; d = 32, m = 64; check_k counts "
          "biohash_index._validation.RESULT_BYTES per result (+ CANDIDATE_BYTES per candidate "
          "beyond k)")
    print_table(["search", "ntotal", "nq", "k", "peak bytes / (nq k)"], rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--block", type=int, default=100_000)
    ap.add_argument("--results", action="store_true", help="only the bytes per search result")
    args = ap.parse_args()
    print(machine())
    if args.results:
        return results_table()
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
    results_table()


if __name__ == "__main__":
    main()
