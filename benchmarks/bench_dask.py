"""A sharded index on 2 Dask worker processes against one index in this process: queries
per second, where a sharded search spends its time, and a model of more workers.

Data: synthetic clustered float32 vectors (d = 128, 100 Gaussian clusters), made block by block
from (seed, block number), on the workers for the sharded index and in this process for the
single one: the same vectors and ids on both sides. One index (--task labels: k = 16, m = 320,
Hamming order; --task neighbors: k = 160, m = 320, weighted order; 40-byte codes either way;
--storage flat or ivf) is trained on the first 20,000 vectors and is the template of both. The
single index grows by ``add`` and the sharded one by ``add_from`` (one shard per --block rows),
in steps to each --sizes value. Every process runs numpy, numba and faiss on 1 thread.

1. Throughput at each size: seconds to add; queries per second for batches of --nq queries
   (k = 10), single and sharded timed in turns (median of --repeat after a warm-up; sharded
   results checked equal to the single index's); the CPU seconds of a batch in one process
   against the largest of the workers' search tasks (each worker searches the shards it
   holds, as ``ShardedIndex.search`` does); resident memory.
2. Where a sharded batch spends its time at the last size: encoding on the client, the fixed
   cost of a search (the same search over shards of one vector each: who_has, sending the
   tasks, returning and merging the results), the cost of one more task (a batch of empty
   tasks), the merge of W workers' shortlists; in wall time on this machine, and in CPU time
   of the client, scheduler and busiest worker less their idle use (the cost when each
   process has a core of its own).
3. The model those figures give for W workers: a batch takes fixed + (W - 2) x per task
   + scan / W + merge(W) - merge(2) (the fixed cost includes encoding and a merge of two);
   on several machines add a network round trip and the bytes sent to and from each worker
   (--rtt, --bandwidth: assumed, not measured here).

On a busy machine wall times include waiting for a core; the CPU columns and the model do not.

    python benchmarks/bench_dask.py [--sizes 1000000] [--nq 100] [--repeat 5]
        [--task labels|neighbors] [--storage flat|ivf] [--nlist 1024] [--nprobe 16]
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
from common import interleaved_medians  # noqa: E402
from biohash_index._search import (encode_queries, merge_shortlists, shortlist,  # noqa: E402
                                   shortlist_size)

D_IN, SEED, CLUSTERS, CODE_BITS = 128, 0, 100, 320
QUERY_BLOCK = 10**6  # block number of the queries, beyond any data block
K = 10
MODEL_WORKERS = (1, 2, 4, 8, 16, 32, 64, 256)


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


def cpu_seconds(fn, repeat: int) -> float:
    """Median CPU seconds of the calling thread in ``fn()`` over ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        t0 = time.thread_time()
        fn()
        times.append(time.thread_time() - t0)
    return statistics.median(times)


def wall_in_turns(fns: dict, repeat: int) -> dict:
    """Median wall seconds of each callable after a warm-up, timed in turns."""
    for fn in fns.values():
        fn()
    return interleaved_medians(fns, repeat)


def worker_search_cpu(K: int, queries, nprobe, repeat: int, *shards) -> float:
    """On a worker: median CPU seconds of what its search task does (each shard's shortlist,
    merged)."""
    def run():
        parts = [shortlist(s.storage, queries, K, nprobe=nprobe) for s in shards]
        if len(parts) > 1:
            merge_shortlists(parts, K)
    return cpu_seconds(run, repeat)


def noop(i):
    return i


def by_worker(client, futures) -> list[list]:
    """The shard futures grouped by the worker holding them, as a sharded search groups them."""
    holders = client.who_has(futures)
    groups: dict = {}
    for f in futures:
        groups.setdefault(min(holders[f.key]), []).append(f)
    return list(groups.values())


def make_template(args) -> BioHashIndex:
    hash_length = 16 if args.task == "labels" else CODE_BITS // 2
    template = BioHashIndex(D_IN, hash_length, n_hidden=CODE_BITS, task=args.task,
                            epochs=2 if args.task == "labels" else None,
                            storage=args.storage, nlist=args.nlist, nprobe=args.nprobe)
    template.train(make_block(0, 20_000))
    return template


def table(header: list[str], rows: list[list]) -> None:
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(str(v) for v in r) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--block", type=int, default=250_000, help="rows per block and shard")
    ap.add_argument("--nq", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--task", choices=("labels", "neighbors"), default="labels")
    ap.add_argument("--storage", choices=("flat", "ivf"), default="flat")
    ap.add_argument("--nlist", type=int, default=1024)
    ap.add_argument("--nprobe", type=int, default=16)
    ap.add_argument("--rtt", type=float, default=0.5e-3,
                    help="assumed network round trip between machines, seconds")
    ap.add_argument("--bandwidth", type=float, default=1e9,
                    help="assumed network bandwidth between machines, bytes per second")
    args = ap.parse_args()
    if any(n % args.block for n in args.sizes):
        ap.error("every size must be a multiple of --block")

    template = make_template(args)
    xq = make_block(QUERY_BLOCK, args.nq)
    single = copy.deepcopy(template)
    storage = args.storage + (f", nlist={args.nlist}, nprobe={args.nprobe}"
                              if args.storage == "ivf" else "")
    print(f"synthetic d={D_IN}, {CLUSTERS} clusters; task={args.task}: k={template.hash_length}, "
          f"m={template.n_hidden} ({template.code_size}-byte codes, {storage}, "
          f"{template.params.scoring} scoring); {args.block:,} rows per shard; batches of "
          f"{args.nq} queries, k={K}; median of {args.repeat}; 1 thread per process; sharded: "
          f"2 worker processes (LocalCluster); load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores at the start")
    rows, base_rss = [], rss_mib()
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

            D, I = sharded.search(xq, K)
            Dref, Iref = single.search(xq, K)
            assert np.array_equal(I, Iref) and np.array_equal(D, Dref), "results differ"
            wall = wall_in_turns({"single": lambda: single.search(xq, K),
                                  "sharded": lambda: sharded.search(xq, K)}, args.repeat)
            queries = encode_queries(single.model, xq)
            Kq = shortlist_size(K, size) if queries.asymmetric else K
            cpu_single = cpu_seconds(lambda: single.search(xq, K), args.repeat)
            cpu_tasks = client.gather([
                client.submit(worker_search_cpu, Kq, queries, None, args.repeat, *group,
                              pure=False)
                for group in by_worker(client, sharded.shards_)])
            workers = client.run(rss_mib)
            rows.append([f"{size:,}", f"{t_single:.1f}", f"{t_sharded:.1f}",
                         f"{args.nq / wall['single']:.0f}", f"{args.nq / wall['sharded']:.0f}",
                         f"{wall['single'] / wall['sharded']:.2f}", f"{cpu_single:.3f}",
                         " / ".join(f"{c:.3f}" for c in cpu_tasks),
                         f"{cpu_single / max(cpu_tasks):.2f}", f"{rss_mib() - base_rss:.0f}",
                         " / ".join(f"{w:.0f}" for w in sorted(workers.values()))])
        print("\n1. Throughput")
        table(["vectors", "add s, single", "add s, sharded", "q/s single (wall)",
               "q/s sharded (wall)", "speed-up (wall)", "CPU s per batch, single",
               "CPU s per batch, each worker's task", "speed-up (CPU, tasks only)",
               "RSS MiB single", "RSS MiB per worker"], rows)
        print(f"RSS of this process is counted from after training; a worker's RSS includes "
              f"its Python, dask, numba and faiss: "
              f"{' / '.join(f'{w:.0f}' for w in sorted(idle.values()))} MiB before any shard")
        costs = measure_costs(client, template, folder, single, xq, sharded, args)
        sharded.close()
    model(costs, cpu_single, max(cpu_tasks), wall["single"] / wall["sharded"], args)


def per_call(client, fn, calls: int) -> tuple[float, float]:
    """(wall, CPU) seconds per call of ``fn``; CPU: this process's (the client and the
    LocalCluster's scheduler) plus the busiest worker's, less what each uses when idle (its
    rate over a second of sleep): the call's cost with a core per process."""
    def snapshot():
        return time.process_time(), client.run(time.process_time)
    m0, w0 = snapshot()
    time.sleep(1.0)
    m1, w1 = snapshot()
    idle_main, idle_workers = m1 - m0, {w: w1[w] - w0[w] for w in w0}
    fn()
    m0, w0 = snapshot()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    wall = time.perf_counter() - t0
    m1, w1 = snapshot()
    main = m1 - m0 - idle_main * wall
    worker = max(w1[w] - w0[w] - idle_workers[w] * wall for w in w0)
    return wall / calls, max(main + worker, 0.0) / calls


def measure_costs(client, template, folder, single, xq, sharded, args) -> dict:
    """Table 2: the parts of a sharded batch at the last size, in seconds."""
    tiny = bhd.ShardedIndex.create(template, os.path.join(folder, "tiny"), client)
    tiny.add_from(lazy_blocks(0, sharded.nshards, 1))   # the same shard count, 1 vector each
    fixed = per_call(client, lambda: tiny.search(xq, K), 10 * args.repeat)
    tiny.close()
    n_tasks = 100
    per_task = per_call(client, lambda: client.gather(client.map(noop, range(n_tasks),
                                                                 pure=False)), 3)
    per_task = tuple(t / n_tasks for t in per_task)
    queries = encode_queries(single.model, xq)
    encode = cpu_seconds(lambda: encode_queries(single.model, xq), args.repeat)
    Kq = shortlist_size(K, single.ntotal) if queries.asymmetric else K
    part = shortlist(single.storage, queries, Kq)
    merge = {w: cpu_seconds(lambda: merge_shortlists([part] * w, Kq), args.repeat)
             for w in MODEL_WORKERS if w > 1}
    result_bytes = sum(a.nbytes for a in part if a is not None)
    query_bytes = sum(getattr(queries, f).nbytes for f in ("x", "codes", "c", "scale")
                      if getattr(queries, f) is not None)
    print(f"\n2. Where a sharded batch of {args.nq} queries spends its time ({single.ntotal:,} "
          f"vectors, {sharded.nshards} shards, 2 workers), seconds")
    table(["part", "wall (this machine)", "CPU (a core per process)", "how measured"], [
        ["encode the queries (client)", "", f"{encode:.4f}", "median"],
        ["fixed cost of a search", f"{fixed[0]:.4f}", f"{fixed[1]:.4f}",
         f"a search over {sharded.nshards} shards of 1 vector each (2 tasks)"],
        ["each further task", f"{per_task[0]:.5f}", f"{per_task[1]:.5f}",
         f"{n_tasks} empty tasks sent at once"],
        *[[f"merge {w} workers' shortlists (client)", "", f"{merge[w]:.5f}", "median"]
          for w in (2, 8, 64)],
        ["bytes sent to each worker / returned by it", "",
         f"{query_bytes:,} / {result_bytes:,}",
         "queries (vectors, codes, unit inputs) / shortlist"]])
    print("CPU: this process (client and scheduler) plus the busiest worker, less their idle "
          "use; what the part costs when each process has a core of its own")
    return {"fixed": fixed[1], "per_task": per_task[1], "merge": merge,
            "query_bytes": query_bytes, "result_bytes": result_bytes, "n": single.ntotal}


def model(c: dict, cpu_single: float, cpu_task: float, measured: float, args) -> None:
    """Table 3: predicted batch time and speed-up for W workers (one core each)."""
    scan = 2 * cpu_task   # the whole data's scan, as two workers did it
    rows = []
    for w in MODEL_WORKERS:
        if w == 1:
            t_local = t_net = cpu_single
        else:
            t_local = (c["fixed"] + (w - 2) * c["per_task"] + scan / w
                       + c["merge"][w] - c["merge"][2])
            t_net = t_local + args.rtt + w * (c["query_bytes"] + c["result_bytes"]) / args.bandwidth
        weak = t_net - scan / w + scan / 2 if w > 1 else cpu_single  # n/2 vectors per worker
        rows.append([w, f"{t_local:.4f}", f"{cpu_single / t_local:.2f}", f"{t_net:.4f}",
                     f"{cpu_single / t_net:.2f}", f"{w * c['n'] // 2:,}",
                     f"{args.nq / weak:.0f}"])
    print(f"\n3. Model: a batch of {args.nq} queries on W workers, one core each "
          f"(fixed + (W - 2) x per task + scan / W + merge(W) - merge(2); across machines "
          f"+ {args.rtt * 1e3:.1f} ms round trip + W x bytes at {args.bandwidth / 1e9:g} GB/s, "
          f"assumed). Measured here with 2 workers: {measured:.2f} x (wall, busy machine)")
    table(["workers W", f"batch s, {c['n']:,} vectors, one machine", "speed-up",
           "batch s, machines", "speed-up, machines", "vectors at n/2 per worker",
           "q/s at n/2 per worker, machines"], rows)


if __name__ == "__main__":
    main()
