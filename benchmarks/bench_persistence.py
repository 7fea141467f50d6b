"""Save/load speed of a BioHashIndex against writing the same state with faiss and numpy.

Ours: ``index.save`` (Arrow + faiss files, sha256 of every file, fsync, atomic rename) and
``BioHashIndex.load`` (checksums verified, Arrow memory-mapped, faiss parse, consistency
checks); ``serialize_index``/``deserialize_index`` (what pickle uses).
Baseline: ``faiss.write_index_binary`` + ``np.save`` of weights and mean (no checksums, no
fsync; the "save+fsync" row fsyncs its files and directory too) and
``faiss.read_index_binary`` + ``np.load``; ``faiss.serialize_index_binary``.
Times are medians of --runs runs, taken side by side in one process (warm page cache).

    python benchmarks/bench_persistence.py [--n 100000] [--runs 5]
"""
import argparse
import os
import shutil
import tempfile
from pathlib import Path

import faiss
import numpy as np

from biohash_index import BioHashIndex, deserialize_index, serialize_index
from common import median_time


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="vectors in the index")
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--hash-length", type=int, default=16)
    ap.add_argument("--n-hidden", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    xb = rng.standard_normal((args.n, args.d)).astype(np.float32)
    index = BioHashIndex(args.d, args.hash_length, n_hidden=args.n_hidden, epochs=1,
                         task="labels")
    index.train(xb[:5000])
    index.add(xb)
    model, codes = index.model, index.storage.index

    tmp = Path(tempfile.mkdtemp())
    counter = iter(range(10**9))

    def ours_save():
        path = tmp / f"ours{next(counter)}"
        index.save(path)
        return path

    def base_save():
        path = tmp / f"base{next(counter)}"
        path.mkdir()
        faiss.write_index_binary(codes, str(path / "codes.faiss"))
        np.save(path / "weights.npy", model.weights_)
        np.save(path / "mean.npy", model.mean_)
        return path

    def base_save_fsync():
        path = base_save()
        for p in [*path.iterdir(), path]:
            fd = os.open(p, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)

    ours_path, base_path = ours_save(), base_save()

    def base_load():
        return (faiss.read_index_binary(str(base_path / "codes.faiss")),
                np.load(base_path / "weights.npy"), np.load(base_path / "mean.npy"))

    blob = serialize_index(index)
    rows = [
        ("save", lambda: ours_save(), base_save),
        ("save+fsync", lambda: ours_save(), base_save_fsync),
        ("load", lambda: BioHashIndex.load(ours_path), base_load),
        ("serialize", lambda: serialize_index(index), lambda: faiss.serialize_index_binary(codes)),
        ("deserialize", lambda: deserialize_index(blob),
         lambda: faiss.deserialize_index_binary(faiss.serialize_index_binary(codes))),
    ]
    size = sum(p.stat().st_size for p in ours_path.rglob("*") if p.is_file())
    print(f"n={args.n} d={args.d} k={args.hash_length} m={args.n_hidden}: "
          f"{size / 1e6:.1f} MB on disk, median of {args.runs} runs")
    print("| operation | ours (s) | faiss + numpy (s) | ratio |")
    print("|---|---|---|---|")
    try:
        for name, ours, base in rows:
            t_ours = median_time(ours, args.runs)
            t_base = median_time(base, args.runs)
            print(f"| {name} | {t_ours:.4f} | {t_base:.4f} | {t_ours / t_base:.2f} |")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
