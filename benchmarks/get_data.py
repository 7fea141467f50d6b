"""Download the public benchmark sets into the folder the tests and benchmarks read
(``data_dir.DATA``: ``$BIOHASH_DATA``, else ``../shared/data`` beside the repository),
checked against the MD5 sums of the copies the figures were measured on.

    python benchmarks/get_data.py [--sets mnist,siftsmall,bigann10k,fmnistsmall] [--dest DIR]

| set | source | files |
|---|---|---|
| mnist | the MNIST test set, as published | t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz |
| siftsmall | ANN_SIFT10K of the INRIA TEXMEX corpus (siftsmall.tar.gz), as published | siftsmall_{base,query}.fvecs, siftsmall_groundtruth.ivecs |
| bigann10k | derived from BIGANN (TEXMEX bigann_base.bvecs.gz): its first 10,000 vectors (only the start of the 92 GB archive is read, about 1.3 MB uncompressed); the queries are the first 100 of them | bigann10k_{base,query}.bvecs, bigann10k_groundtruth.ivecs |
| fmnistsmall | derived from Fashion-MNIST: the first 1,000 training and the first 500 test images as float32 pixels 0-255 | fmnistsmall_{base,query}.fvecs, fmnistsmall_groundtruth.ivecs |

A ground truth made here is the exact top 100 by L2 (the pixels and descriptors are
integers, so the distances are exact), ties by smaller id. The reference copy of bigann10k's lists 4 pairs of tied neighbours (of
10,000 entries, none in the top 10) the other way round; so a ground truth made here is
checked by the MD5 of each query's 100 ids sorted (GT_SETS_MD5), which ties do not change.

A set whose files are there and check out is left alone; files are written only once a whole
set has downloaded and checked out. ``--base-url URL`` reads every file from
``URL/<folder>/<name>`` instead of the public mirrors (MIRRORS), e.g. a local copy.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import sys
import tarfile
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data_dir import DATA  # noqa: E402

# public files: "folder/name" -> the mirrors that serve ``name``, tried in order
MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "https://storage.googleapis.com/cvdf-datasets/mnist/",
                 "http://yann.lecun.com/exdb/mnist/")
TEXMEX = ("ftp://ftp.irisa.fr/local/texmex/corpus/",)
FASHION = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
MIRRORS = {
    "mnist/t10k-images-idx3-ubyte.gz": MNIST_MIRRORS,
    "mnist/t10k-labels-idx1-ubyte.gz": MNIST_MIRRORS,
    "texmex/siftsmall.tar.gz": TEXMEX,
    "texmex/bigann_base.bvecs.gz": TEXMEX,
    "fashion-mnist/train-images-idx3-ubyte.gz": FASHION,
    "fashion-mnist/t10k-images-idx3-ubyte.gz": FASHION,
}
# MD5 sums of the reference copies
MD5 = {
    "mnist/t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "mnist/t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    "siftsmall/siftsmall_base.fvecs": "30b1197f1e01c6d477b367d1f7a84156",
    "siftsmall/siftsmall_query.fvecs": "7775eae73731956655843fa44cd3666a",
    "siftsmall/siftsmall_groundtruth.ivecs": "4c111b6f0b007504a4ebc9fc161636f6",
    "bigann10k/bigann10k_base.bvecs": "bec45a38db470124029743bb355430f6",
    "bigann10k/bigann10k_query.bvecs": "c3c42ea5b604215963e2ad7d52022aee",
    "bigann10k/bigann10k_groundtruth.ivecs": "02ffd296df5f89ad13d05659cf1cb452",
    "fmnistsmall/fmnistsmall_base.fvecs": "9367517e91bcc51c9dd93175c1084758",
    "fmnistsmall/fmnistsmall_query.fvecs": "7cdd220be9486915af42da701b6338cb",
    "fmnistsmall/fmnistsmall_groundtruth.ivecs": "d1020390cabd65ebc550879b5b975d66",
}
# MD5 of the reference ground truths with each query's ids sorted (int32 little-endian)
GT_SETS_MD5 = {
    "bigann10k/bigann10k_groundtruth.ivecs": "c35d8eaa19093741cf85e8269f4d25ef",
    "fmnistsmall/fmnistsmall_groundtruth.ivecs": "e876d320d3a21897d79857cd5bf6eed0",
}
TIMEOUT = 60   # seconds without data before a download gives up
K = 100        # neighbours in a ground truth


# ---------------------------------------------------------------- downloading
def fetch(key: str, base_url: str | None, gunzip_bytes: int | None = None) -> bytes:
    """The bytes of the public file ``key`` ("folder/name"), from the first mirror that
    answers; with ``gunzip_bytes``, the first that many bytes of its gzip content (the rest
    is not downloaded)."""
    urls = ([f"{base_url.rstrip('/')}/{key}"] if base_url else
            [mirror + key.split("/")[-1] for mirror in MIRRORS[key]])
    errors = []
    for url in urls:
        print(f"  {url}", flush=True)
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
                if gunzip_bytes is None:
                    return response.read()
                data = gzip.GzipFile(fileobj=response).read(gunzip_bytes)
                if len(data) < gunzip_bytes:
                    raise OSError(f"only {len(data)} of {gunzip_bytes} bytes")
                return data
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            errors.append(f"{url}: {e}")
    raise RuntimeError(f"could not download {key.split('/')[-1]}: " + "; ".join(errors))


# ---------------------------------------------------------------- formats
def vecs_bytes(x: np.ndarray) -> bytes:
    """(n, d) rows in the .fvecs / .ivecs / .bvecs layout: an int32 d, then the row."""
    dim = np.full((len(x), 1), x.shape[1], "<i4").view(np.uint8)
    return np.hstack([dim, np.ascontiguousarray(x).view(np.uint8).reshape(len(x), -1)]).tobytes()


def idx_images(gz: bytes, n: int) -> np.ndarray:
    """The first n images of a gzipped IDX image file, uint8 (n, rows * cols)."""
    data = gzip.decompress(gz)
    magic, count, rows, cols = np.frombuffer(data[:16], ">u4")
    if magic != 2051 or count < n:
        raise ValueError(f"not an IDX image file of at least {n} images")
    return np.frombuffer(data[16:16 + n * rows * cols], np.uint8).reshape(n, rows * cols)


def ground_truth(xb: np.ndarray, xq: np.ndarray) -> np.ndarray:
    """int32 (nq, K): each query's K nearest rows of xb by L2, ties by smaller id; exact
    for integer-valued data (float64 holds every sum of their products exactly)."""
    xb, xq = xb.astype(np.float64), xq.astype(np.float64)
    d = (xq ** 2).sum(axis=1)[:, None] - 2 * xq @ xb.T + (xb ** 2).sum(axis=1)[None]
    return np.argsort(d, axis=1, kind="stable")[:, :K].astype(np.int32)


# ---------------------------------------------------------------- the sets
def mnist(base_url):
    return {name: fetch(f"mnist/{name}", base_url)
            for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def siftsmall(base_url):
    archive = fetch("texmex/siftsmall.tar.gz", base_url)
    names = ("siftsmall_base.fvecs", "siftsmall_query.fvecs", "siftsmall_groundtruth.ivecs")
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        return {name: tar.extractfile(f"siftsmall/{name}").read() for name in names}


def bigann10k(base_url):
    d, n, nq = 128, 10_000, 100
    raw = fetch("texmex/bigann_base.bvecs.gz", base_url, gunzip_bytes=n * (4 + d))
    xb = np.frombuffer(raw, np.uint8).reshape(n, 4 + d)[:, 4:]
    return {"bigann10k_base.bvecs": vecs_bytes(xb), "bigann10k_query.bvecs": vecs_bytes(xb[:nq]),
            "bigann10k_groundtruth.ivecs": vecs_bytes(ground_truth(xb, xb[:nq]))}


def fmnistsmall(base_url):
    xb = idx_images(fetch("fashion-mnist/train-images-idx3-ubyte.gz", base_url), 1000)
    xq = idx_images(fetch("fashion-mnist/t10k-images-idx3-ubyte.gz", base_url), 500)
    return {"fmnistsmall_base.fvecs": vecs_bytes(xb.astype("<f4")),
            "fmnistsmall_query.fvecs": vecs_bytes(xq.astype("<f4")),
            "fmnistsmall_groundtruth.ivecs": vecs_bytes(ground_truth(xb, xq))}


BUILDERS = {"mnist": mnist, "siftsmall": siftsmall, "bigann10k": bigann10k,
            "fmnistsmall": fmnistsmall}   # set -> its files, {name: bytes}, from base_url


# ---------------------------------------------------------------- checking and writing
def check(key: str, data: bytes) -> str | None:
    """None if ``data`` is the file ``key`` ("set/name") the figures were measured on (for
    a ground truth made here: up to the order of tied neighbours), else what differs."""
    if hashlib.md5(data).hexdigest() == MD5[key]:
        return None
    if key in GT_SETS_MD5:
        ids = np.frombuffer(data, "<i4").reshape(-1, K + 1)[:, 1:]
        if hashlib.md5(np.sort(ids, axis=1).astype("<i4").tobytes()).hexdigest() == \
                GT_SETS_MD5[key]:
            return None
    return f"{key}: MD5 {hashlib.md5(data).hexdigest()}, expected {MD5[key]}"


def is_there(dest: Path, name: str) -> bool:
    """Whether every file of the set ``name`` is in ``dest`` and checks out."""
    keys = [key for key in MD5 if key.startswith(f"{name}/")]
    return all((dest / key).is_file() and check(key, (dest / key).read_bytes()) is None
               for key in keys)


def install(dest: Path, name: str, files: dict[str, bytes]) -> None:
    """Check every file of a set, then write them into dest/name (each written to a
    temporary file and renamed); nothing is written if one fails its check."""
    problems = [p for p in (check(f"{name}/{f}", data) for f, data in files.items()) if p]
    if problems:
        raise RuntimeError("checksum mismatch, nothing written: " + "; ".join(problems))
    (dest / name).mkdir(parents=True, exist_ok=True)
    for f, data in files.items():
        tmp = dest / name / f".{f}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, dest / name / f)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", default=",".join(BUILDERS),
                    help=f"comma-separated, of {', '.join(BUILDERS)}")
    ap.add_argument("--dest", default=str(DATA), help=f"where to put them (default {DATA})")
    ap.add_argument("--base-url", default=None,
                    help="read every file from BASE_URL/<folder>/<name> instead of the mirrors")
    args = ap.parse_args(argv)
    dest, failed = Path(args.dest), []
    for name in args.sets.split(","):
        if name not in BUILDERS:
            ap.error(f"unknown set {name!r}; the sets are {', '.join(BUILDERS)}")
        if is_there(dest, name):
            print(f"{name}: already in {dest / name}")
            continue
        print(f"{name}: downloading", flush=True)
        try:
            install(dest, name, BUILDERS[name](args.base_url))
            print(f"{name}: written to {dest / name}")
        except (RuntimeError, ValueError, OSError, tarfile.TarError, KeyError) as e:
            print(f"{name}: failed: {e}", file=sys.stderr)
            failed.append(name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
