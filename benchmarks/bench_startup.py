"""First call in a fresh process: import time and the first train / encode / search, with
numba's on-disk cache warm (the usual case) and cold (compiling every kernel).

    python benchmarks/bench_startup.py

Each case is a new interpreter; the cold case points NUMBA_CACHE_DIR at an empty folder.
Figures are wall seconds and, in brackets, CPU seconds of the process (all threads): on a
loaded machine the CPU time is the steadier measure of the work.
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
out = {}

def timed(name, fn):
    t, c = time.perf_counter(), time.process_time()
    fn()
    out[name] = (time.perf_counter() - t, time.process_time() - c)

timed("import", lambda: __import__("biohash_index"))
import numpy as np
from biohash_index import BioHashIndex
x = np.random.default_rng(0).standard_normal((2000, 32)).astype(np.float32)
for storage in ("flat", "inverted"):
    index = BioHashIndex(32, 4, n_hidden=64, epochs=1, storage=storage, task="labels")
    timed(storage + " train", lambda: index.train(x))
    timed(storage + " add", lambda: index.add(x))
    timed(storage + " search", lambda: index.search(x[:10], 5))
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
    rows = [[step] + [f"{r[step][0]:.2f} ({r[step][1]:.2f})" for r in (cold, warm_own, warm)]
            for step in cold]
    print_table(["first call", "cold cache s", "warm cache s (same dir)",
                 "warm cache s (default dir)"], rows)


if __name__ == "__main__":
    main()
