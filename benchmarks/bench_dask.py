"""A sharded index on 2 Dask worker processes against one in-process index, growing 0.5M -> 2M.

Data: synthetic clustered float32 vectors (d = 128, 100 Gaussian clusters), made block by block
from (seed, block number), on the workers for the sharded index and in this process for the
single one: the same vectors and ids on both sides. One index (k = 16, m = 320: 40-byte codes,
flat storage) is trained on the first 20,000 vectors and is the template of both. The single
index grows by ``add`` and the sharded one by ``add_from`` (one shard per --block rows, files
in a temporary directory), in steps to each --sizes value. At each size: seconds to add the
new vectors, queries per second for a batch of --nq queries (k = 10; median of --repeat runs
after a warm-up), and resident memory of this process and of each worker. Sharded results are
checked to equal the single index's. Every process runs numpy, numba and faiss on 1 thread.

    python benchmarks/bench_dask.py [--sizes 500000 1000000 2000000] [--nq 100] [--repeat 3]
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy/numba/faiss load; worker processes inherit it

import argparse  # noqa: E402
import copy  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import dask.array as da  # noqa: E402
import numpy as np  # noqa: E402
import psutil  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402

from biohash_index import BioHashIndex  # noqa: E402
from biohash_index import dask as bhd  # noqa: E402

D_IN, SEED, CLUSTERS = 128, 0, 100
QUERY_BLOCK = 10**6  # block number of the queries, beyond any data block


def make_block(number: int, rows: int) -> np.ndarray:
    """float32 (rows, D_IN): the vectors of block ``number``, the same wherever made."""
    centers = 2 * np.random.default_rng(SEED).standard_normal((CLUSTERS, D_IN), np.float32)
    rng = np.random.default_rng([SEED, number])
    return centers[rng.integers(0, CLUSTERS, rows)] + rng.standard_normal((rows, D_IN),
                                                                           np.float32)


def lazy_blocks(first: int, count: int, rows: int) -> da.Array:
    """Blocks first .. first + count - 1 as a dask array, each made on a worker."""
    def block(block_info=None):
        return make_block(first + block_info[None]["chunk-location"][0], rows)
    return da.map_blocks(block, chunks=((rows,) * count, (D_IN,)), dtype=np.float32)


def rss_mib() -> float:
    return psutil.Process().memory_info().rss / 2**20


def timed(fn, repeat: int) -> float:
    """Median seconds of ``fn()`` over ``repeat`` runs after one warm-up run."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[500_000, 1_000_000, 2_000_000])
    ap.add_argument("--block", type=int, default=250_000, help="rows per block and shard")
    ap.add_argument("--nq", type=int, default=100)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if any(n % args.block for n in args.sizes):
        ap.error("every size must be a multiple of --block")

    template = BioHashIndex(D_IN, 16, epochs=2, task="labels")
    template.train(make_block(0, 20_000))
    xq = make_block(QUERY_BLOCK, args.nq)
    single = copy.deepcopy(template)
    print(f"synthetic d={D_IN}, {CLUSTERS} clusters; k={template.hash_length}, "
          f"m={template.n_hidden} ({template.code_size}-byte codes, flat); {args.block:,} rows "
          f"per shard; {args.nq} queries, k={args.k}, median of {args.repeat}; 1 thread per "
          "process; sharded: 2 worker processes (LocalCluster)")
    print(f"{'vectors':>10} {'add s':>7} {'add s':>7} {'search q/s':>10} "
          f"{'q/s':>7} {'RSS MiB':>8} {'RSS MiB per worker':>19}")
    print(f"{'':>10} {'single':>7} {'sharded':>7} {'single':>10} "
          f"{'sharded':>7} {'single':>8} {'sharded':>19}")
    base_rss = rss_mib()
    with tempfile.TemporaryDirectory() as folder, \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                         dashboard_address=None) as cluster, Client(cluster) as client:
        sharded = bhd.ShardedIndex.create(template, os.path.join(folder, "shards"), client)
        idle = client.run(rss_mib)
        done = 0
        for size in args.sizes:
            first, count = done // args.block, (size - done) // args.block
            t0 = time.perf_counter()
            for b in range(first, first + count):
                single.add(make_block(b, args.block))
            t_single = time.perf_counter() - t0
            t0 = time.perf_counter()
            sharded.add_from(lazy_blocks(first, count, args.block))
            t_sharded = time.perf_counter() - t0
            done = size
            assert sharded.ntotal == single.ntotal == size

            D, I = sharded.search(xq, args.k)
            Dref, Iref = single.search(xq, args.k)
            assert np.array_equal(I, Iref) and np.array_equal(D, Dref), "results differ"
            q_single = args.nq / timed(lambda: single.search(xq, args.k), args.repeat)
            q_sharded = args.nq / timed(lambda: sharded.search(xq, args.k), args.repeat)
            workers = client.run(rss_mib)
            print(f"{size:>10,} {t_single:7.1f} {t_sharded:7.1f} {q_single:10.0f} "
                  f"{q_sharded:7.0f} {rss_mib() - base_rss:8.0f} "
                  f"{' / '.join(f'{w:.0f}' for w in sorted(workers.values())):>19}")
        print(f"RSS of this process is counted from after training; a worker's RSS includes "
              f"its Python, dask, numba and faiss: "
              f"{' / '.join(f'{w:.0f}' for w in sorted(idle.values()))} MiB before any shard")
        sharded.close()


if __name__ == "__main__":
    main()
