"""Encode throughput of ``biohash_index.dask.encode`` against the number of Dask workers.

Data: the siftsmall base vectors (../shared/data, or $BIOHASH_DATA) tiled to --rows rows,
made and persisted on the workers of a ``distributed.LocalCluster`` (one process per worker,
one thread each) before timing, so the table measures encoding, not shipping the input.
Every process, this one too, runs numpy and numba on one thread (set before they load), so
the rows compare one core with n. Reference: ``BioHashModel.encode`` of the whole array in
this process. Codes are checked against it. Needs as many idle cores as workers.

    python benchmarks/bench_dask.py [--rows 100000] [--workers 1 2] [--repeat 3]
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy/numba load; worker processes inherit it

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import dask  # noqa: E402
import dask.array as da  # noqa: E402
import numpy as np  # noqa: E402
from distributed import Client, LocalCluster, wait  # noqa: E402

from biohash_index import BioHashIndex  # noqa: E402
from biohash_index import dask as bhd  # noqa: E402
from biohash_index.datasets import read_fvecs  # noqa: E402

DATA = Path(os.environ.get("BIOHASH_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def tile(base: np.ndarray, block_info=None) -> np.ndarray:
    """Rows start..stop of ``base`` repeated: a block of the tiled data, made on a worker."""
    (start, stop), _ = block_info[None]["array-location"]
    return base[np.arange(start, stop) % len(base)]


def timed(fn, repeat: int) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeat`` runs (after one warm-up run)."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--chunk", type=int, default=10_000, help="rows per dask block")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    base = read_fvecs(DATA / "siftsmall" / "siftsmall_base.fvecs")
    xb = np.resize(base, (args.rows, base.shape[1]))
    chunks = (tuple(np.diff(np.r_[0:args.rows:args.chunk, args.rows])), (base.shape[1],))
    index = BioHashIndex(base.shape[1], 16, epochs=2)  # m = 320 hidden units, 40-byte codes
    index.train(base[:5000])
    model = index.model
    print(f"siftsmall tiled to {args.rows} x {base.shape[1]} float32, {args.chunk} rows per "
          f"block; k={index.hash_length}, m={index.n_hidden}; median of {args.repeat} runs; "
          "1 thread per process")

    t_local = timed(lambda: model.encode(xb), args.repeat)
    print(f"{'encoder':<28} {'seconds':>8} {'vectors/s':>11} {'vs in-process':>14}")
    print(f"{'in-process model.encode':<28} {t_local:8.3f} {args.rows / t_local:11,.0f} "
          f"{1.0:14.2f}")
    for n in args.workers:
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            x = client.persist(da.map_blocks(tile, dask.delayed(base), chunks=chunks,
                                             dtype=np.float32))
            wait(x)

            def run():
                codes = bhd.encode(model, x).persist()
                wait(codes)
                return codes
            codes = run()
            assert np.array_equal(codes[:1000].compute(), model.encode(xb[:1000]))
            t = timed(run, args.repeat)
        label = f"dask, {n} worker{'s' if n > 1 else ''}"
        print(f"{label:<28} {t:8.3f} {args.rows / t:11,.0f} {t_local / t:14.2f}")


if __name__ == "__main__":
    main()
