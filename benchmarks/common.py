"""Helpers shared by the benchmark scripts: data, timing and tables."""
from __future__ import annotations

import os
import platform
import time

import faiss
import numba
import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from data_dir import DATA, not_available


def machine() -> str:
    """One line naming the CPU, core count and library versions."""
    cpu = platform.processor() or "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    blas = max((lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"),
               default="?")
    return (f"machine: {cpu}, {os.cpu_count()} cores; numpy {np.__version__}, "
            f"faiss {faiss.__version__}, numba {numba.__version__}, "
            f"numba threads {numba.get_num_threads()}, faiss threads {faiss.omp_get_max_threads()}, "
            f"BLAS threads {blas}")


def add_threads_option(ap) -> None:
    """``--threads N``: numba, faiss and BLAS thread pools for the whole run. On a loaded
    shared machine, 1 gives the steadiest ratios."""
    ap.add_argument("--threads", type=int, default=None,
                    help="numba, faiss and BLAS threads (default: their current settings)")


def apply_threads(n: int | None) -> None:
    if n is not None:
        numba.set_num_threads(n)
        faiss.omp_set_num_threads(n)
        threadpool_limits(n, user_api="blas")


def median_time(fn, repeat: int = 5) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def interleaved_medians(fns: dict, repeat: int = 5) -> dict:
    """Median wall time of each named callable, timed in turns so load changes hit all alike."""
    times = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: float(np.median(t)) for name, t in times.items()}


def print_table(header: list[str], rows: list[list]) -> None:
    """A markdown table; floats printed with 3 significant digits."""
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.3g}"
        return str(v)
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(fmt(v) for v in r) + " |")


def sift_base() -> np.ndarray | None:
    """siftsmall base vectors float32 (10000, 128), or None when the data is absent."""
    from biohash_index.datasets import read_fvecs
    p = DATA / "siftsmall" / "siftsmall_base.fvecs"
    if not p.exists():
        print(not_available(p))
        return None
    return read_fvecs(p)


def sets_present(names: str):
    """The comma-separated set names whose folder is in DATA, in order; the others are
    skipped with a message naming the command that downloads them."""
    for name in names.split(","):
        if (DATA / name).exists():
            yield name
        else:
            print(f"\n{name}: skipped ({not_available(DATA / name)})")


def synthetic(n: int, d: int, seed: int = 0, n_clusters: int = 1000) -> np.ndarray:
    """float32 (n, d) Gaussian clusters: a stand-in for real descriptors at any n."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_clusters, d)).astype(np.float32) * 2
    return centers[rng.integers(0, n_clusters, n)] + rng.standard_normal((n, d), np.float32)
