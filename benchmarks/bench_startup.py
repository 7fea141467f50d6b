"""First call in a fresh process: import time and the first train / encode / search, with
numba's on-disk cache warm (the usual case) and cold (compiling every kernel).

    python benchmarks/bench_startup.py

Each case is a new interpreter; the cold case points NUMBA_CACHE_DIR at an empty folder.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from common import machine, print_table

CHILD = r"""
import json, time
t0 = time.perf_counter()
import numpy as np
from biohash_index import BioHashIndex
t1 = time.perf_counter()
rng = np.random.default_rng(0)
x = rng.standard_normal((2000, 32)).astype(np.float32)
out = {"import": t1 - t0}
for storage in ("flat", "inverted"):
    index = BioHashIndex(32, 4, n_hidden=64, epochs=1, storage=storage)
    t = time.perf_counter(); index.train(x); out[storage + " train"] = time.perf_counter() - t
    t = time.perf_counter(); index.add(x); out[storage + " add"] = time.perf_counter() - t
    t = time.perf_counter(); index.search(x[:10], 5); out[storage + " search"] = time.perf_counter() - t
print(json.dumps(out))
"""


def run(env) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                         check=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    print(machine())
    with tempfile.TemporaryDirectory() as cache:
        cold = run({**os.environ, "NUMBA_CACHE_DIR": cache})
        warm_own = run({**os.environ, "NUMBA_CACHE_DIR": cache})
    warm = run(dict(os.environ))
    rows = [[step, round(cold[step], 2), round(warm_own[step], 2), round(warm[step], 2)]
            for step in cold]
    print_table(["first call", "cold cache s", "warm cache s (same dir)",
                 "warm cache s (default dir)"], rows)


if __name__ == "__main__":
    main()
