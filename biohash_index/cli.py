"""Command line: biohash-index COMMAND (also python -m biohash_index COMMAND).

train, add, search, info, eval and demo; biohash-index COMMAND -h lists the options.
Vectors are read from .npy, .fvecs, .bvecs, .ivecs, Parquet/Arrow files or directories (a list
column) or IDX files; train and add stream them in batches (files are memory-mapped).
"""
from __future__ import annotations

import argparse
import inspect
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

from . import evaluation, plots
from ._version import __version__
from .datasets import TABLES, label_split, load_digits, load_mnist, load_vectors
from .evaluation import mean_average_precision, recall_at_k
from ._index import STORAGES, BioHashIndex, read_index, write_index
from ._model import HYPERPARAMETERS, TASKS, Bool, Int, OneOf, hyperparameters_in_use
from ._formats._io import BioHashFormatError
from ._formats.index_file import read_format_version
from ._progress import set_progress
from ._router import ASSIGNS, ROUTERS
from ._streaming import IPC_SUFFIXES, vector_blocks, vector_column

__all__ = ["main"]
RESULT_FORMATS = (".npy",) + TABLES
# the BioHashIndex keywords that index options set (index_kwargs)
INDEX_OPTIONS = ("n_hidden", "activity", "task", *(f.name for f in HYPERPARAMETERS),
                 "storage", "nlist", "nprobe", "router", "assign")


# ---------------------------------------------------------------- reading and writing
def read_vectors(path, column: str | None = None, d: int | None = None) -> np.ndarray:
    """(n, d) vectors from a file, as stored (the index converts them to float32)."""
    x = load_vectors(path, column)
    if x.ndim != 2:
        raise ValueError(f"{path}: expected vectors of shape (n, d), found shape {x.shape}")
    if d is not None and x.shape[1] != d:
        raise ValueError(f"{path}: vectors of dimension {x.shape[1]}, the index has d={d}")
    return x


def vector_source(path, column: str | None = None):
    """(source, n, d): the vectors of a file as a streaming source for ``train_from`` /
    ``add_from``, read in batches with bounded memory. A Parquet/Arrow file or directory
    stays a path (read batch by batch); .npy, .fvecs, .bvecs and .ivecs are memory-mapped;
    IDX files are read whole (MNIST-sized)."""
    p = Path(path)
    if p.is_dir() or p.suffix.lower() in TABLES:
        return str(p), *table_shape(p, column)
    if p.suffix.lower() == ".npy" and p.is_file():
        try:
            x = np.load(p, mmap_mode="r", allow_pickle=False)
        except ValueError as e:
            raise ValueError(f"{p}: {e}") from None
    else:
        x = load_vectors(p, column)
    if x.ndim != 2:
        raise ValueError(f"{p}: expected vectors of shape (n, d), found shape {x.shape}")
    return x, x.shape[0], x.shape[1]


def table_shape(path: Path, column: str | None) -> tuple[int, int]:
    """(rows, values per row) of the vector column of a Parquet/Arrow file or directory."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    fmt = "ipc" if path.suffix in IPC_SUFFIXES else "parquet"
    try:
        dataset = ds.dataset(path, format=fmt)
    except (pa.ArrowInvalid, OSError) as e:
        raise ValueError(f"{path}: not a readable {fmt} file or directory ({e})") from None
    col = vector_column(dataset.schema, column)
    kind = dataset.schema.field(col).type
    if pa.types.is_fixed_size_list(kind):
        return dataset.count_rows(), kind.list_size
    first = dataset.head(1, columns=[col]).column(0)
    if not len(first) or first[0].as_py() is None:
        raise ValueError(f"{path}: column {col!r} holds no vectors (or its first is null)")
    return dataset.count_rows(), len(first[0].as_py())


def add_vectors(index: BioHashIndex, source, column: str | None, ids=None) -> int:
    """Add the vectors of a source block by block, under ``ids`` (n,) if given; returns n."""
    if ids is None:
        return index.add_from(source, column=column)
    n = 0
    for x in vector_blocks(source, index.d, column=column)():
        index.add_with_ids(x, ids[n:n + len(x)])   # a length mismatch raises here
        n += len(x)
    return n


def open_index(path) -> BioHashIndex:
    """The index saved at ``path``; FileNotFoundError "no such index" if nothing is there."""
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: no such index")
    return read_index(path)


def check_replace(path, force: bool, command: str) -> None:
    """Refuse to overwrite what is at ``path`` unless it is an empty saved index or force:
    replacing an index that holds vectors with another would lose them."""
    if force or not Path(path).exists():
        return
    try:
        ntotal = read_index(path).ntotal
    except BioHashFormatError as e:
        raise ValueError(f"--out {path} exists and is not a readable index ({e}): pass --force "
                         "to replace it, or choose another --out") from None
    if ntotal:
        raise ValueError(f"--out {path} is an index holding {ntotal} vectors; {command} would "
                         "replace it with another index: pass --force to replace it, or choose "
                         "another --out")


def read_values(path, column: str | None = None) -> np.ndarray:
    """(n,) values (labels, ids) from a file; a single-column (n, 1) array is flattened."""
    v = load_vectors(path, column)
    if v.ndim == 2 and v.shape[1] == 1:
        v = v[:, 0]
    if v.ndim != 1:
        raise ValueError(f"{path}: expected one value per row, found shape {v.shape}")
    return v


def check_result_path(path: str) -> str:
    if Path(path).suffix.lower() not in RESULT_FORMATS:
        raise ValueError(f"--out must end with one of {RESULT_FORMATS}, got {path!r}")
    return path


def write_results(path: str, D: np.ndarray, I: np.ndarray) -> None:
    """Search results: .npy holds I (nq, k); a table holds one row per query with columns
    query, ids (k int64) and distances (k float32)."""
    if Path(path).suffix.lower() == ".npy":
        np.save(path, I)
        return
    import pyarrow as pa
    import pyarrow.feather as feather
    import pyarrow.parquet as pq

    k = I.shape[1]
    table = pa.table({
        "query": np.arange(len(I)),
        "ids": pa.FixedSizeListArray.from_arrays(pa.array(I.ravel()), k),
        "distances": pa.FixedSizeListArray.from_arrays(pa.array(D.ravel()), k),
    })
    if Path(path).suffix.lower() == ".parquet":
        pq.write_table(table, path)
    else:
        feather.write_feather(table, path)


def index_kwargs(args) -> dict:
    """BioHashIndex keywords from the parsed index options (those not given are left out)."""
    kw = {name: getattr(args, name) for name in INDEX_OPTIONS}
    return {name: value for name, value in kw.items() if value is not None}


# ---------------------------------------------------------------- commands
def train(args) -> int:
    """Train an index on vectors from a file or Parquet/Arrow directory and save it (with
    the vectors if --add). Refuses to replace an index holding vectors unless --force."""
    check_replace(args.out, args.force, "train")
    source, n, d = vector_source(args.input, args.column)
    index = BioHashIndex(d, args.hash_length, **index_kwargs(args))
    t = time.perf_counter()
    index.train_from(source, column=args.column)
    t_train = time.perf_counter() - t
    if args.add:
        add_vectors(index, source, args.column)
    write_index(index, args.out)
    print(f"trained on {n} vectors in {t_train:.2f} s: {index!r}; wrote {args.out}")
    return 0


def add(args) -> int:
    """Add vectors from a file or Parquet/Arrow directory to a saved index (ids from --ids,
    else numbered on) and save it, to --out if given. Refuses to replace another index
    holding vectors at --out unless --force."""
    index = open_index(args.index)
    if args.out and Path(args.out).resolve() != Path(args.index).resolve():
        check_replace(args.out, args.force, "add")
    source, n, d = vector_source(args.input, args.column)
    if d != index.d:
        raise ValueError(f"{args.input}: vectors of dimension {d}, the index has d={index.d}")
    ids = None
    if args.ids:
        ids = read_values(args.ids, args.ids_column)
        if len(ids) != n:
            raise ValueError(f"--ids has {len(ids)} values for {n} vectors")
    add_vectors(index, source, args.column, ids)
    out = args.out or args.index
    write_index(index, out)
    print(f"added {n} vectors, ntotal={index.ntotal}; wrote {out}")
    return 0


def search(args) -> int:
    """k nearest neighbours of each query: to --out, or printed as query, ids, distances.
    An index that holds no vectors gives -1 ids (exit code 0) and says so on stderr."""
    if args.out:
        check_result_path(args.out)
    index = open_index(args.index)
    if args.nprobe:
        index.nprobe = args.nprobe
    D, I = index.search(read_vectors(args.queries, args.column, index.d), args.k)
    if not index.ntotal:
        print(f"biohash-index: {args.index} holds no vectors: every id is -1 (add vectors with "
              "biohash-index add)", file=sys.stderr)
    if args.out:
        write_results(args.out, D, I)
        print(f"wrote {len(I)} x {args.k} results to {args.out}")
        return 0
    print("query\tids\tdistances")
    for q, (d, i) in enumerate(zip(D, I)):
        print(f"{q}\t{' '.join(map(str, i))}\t{' '.join(f'{v:g}' for v in d)}")
    return 0


def info(args) -> int:
    """Describe a saved index: the hyperparameters that apply to it, size, training
    statistics; --plot draws those of the learning rule's epochs."""
    if args.plot:
        plots.require_matplotlib()
    index = open_index(args.index)
    prm, model = index.params, index.model
    if args.plot and not any(len(v) for v in model.train_stats_.values()):
        why = ("it is not trained" if not model.is_trained else
               f"it ran no epochs of the learning rule (epochs={prm.epochs}, the default of "
               "task='neighbors', whose training learns the mean only)")
        raise ValueError(f"--plot draws per-epoch training statistics, and {args.index} has "
                         f"none: {why}; drop --plot")
    path = Path(args.index)
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() \
        else path.stat().st_size
    storage = index.storage.kind
    if storage == "ivf":
        router = getattr(index.storage, "router", None)
        storage += (f" (nlist={index.storage.nlist}, nprobe={index.nprobe}"
                    + (f", router={router.kind}, assign={router.assign})" if router else ")"))
    rows = [
        ("saved index", f"{args.index} ({size:,} bytes, format version "
                        f"{read_format_version(args.index)})"),
        ("d", prm.d), ("hash_length (k)", prm.hash_length), ("n_hidden (m)", prm.n_hidden),
        ("code_size", f"{prm.code_size} bytes"), ("storage", storage),
        ("ntotal", index.ntotal), ("is_trained", index.is_trained),
    ]
    if model.is_trained:
        codes = index.ntotal * (prm.code_size + 8)  # a code and an int64 id per vector
        rows.append(("memory", f"{(model.weights_.nbytes + model.mean_.nbytes) / 2**20:.2f} MiB "
                               f"model + {codes / 2**20:.2f} MiB codes and ids"))
    rows += [(f.name, getattr(prm, f.name)) for f in hyperparameters_in_use(prm)]
    for name, values in model.train_stats_.items():
        rows.append((name, f"{len(values)} epochs: first {values[0]:.4g}, last {values[-1]:.4g}"
                     if len(values) else "0 epochs (weights as initialised)"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    if args.plot:
        plots.plot_training_stats(model.train_stats_, args.plot, title=f"training of {args.index}")
        print(f"wrote {args.plot}")
    return 0


def evaluate(args) -> int:
    """mAP (with labels) or recall@k (with ground truth) of a saved index, or of one
    index trained per hash length; prints a table and optionally plots it."""
    if (args.index is None) == (args.base is None):
        raise ValueError("give --index INDEX (a saved, filled index) or --base FILE "
                         "(train and fill one index per hash length)")
    if (args.labels is None) == (args.gt is None):
        raise ValueError("give --labels FILE (for mAP) or --gt FILE (for recall@k)")
    if args.index and args.train:
        raise ValueError("--train needs --base: a saved index is already trained")
    if args.plot:
        plots.require_matplotlib()
    xb, xq, metric, score = eval_data(args)
    print(f"{len(xq)} queries; {metric} in %")
    print(f"{'k':>4} {'m':>6} {metric + ' %':>10} {'QPS':>10} {'train s':>8}")
    rows = []
    if args.index:
        index = open_index(args.index)
        if args.nprobe:
            index.nprobe = args.nprobe
        rows.append(eval_row(index, xq, args.k if args.gt else args.R, score, None))
    else:
        xt = read_vectors(args.train, args.column) if args.train else xb
        if args.task is None and args.labels is not None:
            args.task = "labels"
        for k in args.hash_lengths:
            index = BioHashIndex(xb.shape[1], k, **index_kwargs(args))
            t_train = evaluation.fit(index, xt, xb)
            rows.append(eval_row(index, xq, args.k if args.gt else args.R, score, t_train))
    if args.plot:
        ks, _, scores, qps = zip(*rows)
        if args.labels is not None:
            plots.plot_map_vs_hash_length(ks, {"BioHash": scores}, args.plot,
                                          title=f"{metric} versus hash length")
        else:
            plots.plot_recall_vs_qps(scores, qps, [f"k={k}" for k in ks], args.plot,
                                     ylabel=metric)
        print(f"wrote {args.plot}")
    return 0


def eval_data(args):
    """The database (None with --index), the queries, the metric's name and score(I)."""
    xb = read_vectors(args.base, args.column) if args.base else None
    db_labels = read_values(args.labels) if args.labels else None
    if args.queries:
        xq = read_vectors(args.queries, args.column)
        if db_labels is not None:
            if not args.query_labels:
                raise ValueError("--labels with --queries needs --query-labels FILE")
            q_labels = read_values(args.query_labels)
    elif db_labels is not None and xb is not None:
        if len(db_labels) != len(xb):
            raise ValueError(f"--labels has {len(db_labels)} values for {len(xb)} vectors")
        q, db = label_split(db_labels, args.split)  # queries: the first --split of each label
        xq, q_labels, xb, db_labels = xb[q], db_labels[q], xb[db], db_labels[db]
    else:
        raise ValueError("give --queries FILE (or --base with --labels, to split queries off)")
    if db_labels is not None:
        return (xb, xq, "mAP@All" if args.R is None else f"mAP@{args.R}",
                lambda I: mean_average_precision(I, db_labels, q_labels, args.R))
    gt = load_vectors(args.gt)
    if gt.ndim != 2 or len(gt) != len(xq) or gt.shape[1] < args.k:
        raise ValueError(f"--gt must hold at least {args.k} neighbours for each of the "
                         f"{len(xq)} queries, found shape {gt.shape}")
    return xb, xq, f"recall@{args.k}", lambda I: recall_at_k(I, gt, args.k)


def eval_row(index: BioHashIndex, xq: np.ndarray, k: int | None, score, t_train) -> tuple:
    """Search the top k (None: everything) of each query, print and return
    (hash_length, n_hidden, score, queries per second of a warm index)."""
    k = min(k or index.ntotal, max(index.ntotal, 1))
    I, qps = evaluation.timed_search(index, xq, k)
    value = score(I)
    t_text = "-" if t_train is None else f"{t_train:.2f}"
    print(f"{index.hash_length:>4} {index.n_hidden:>6} {100 * value:>10.2f} {qps:>10.0f} "
          f"{t_text:>8}", flush=True)
    return index.hash_length, index.n_hidden, value, qps


def demo(args) -> int:
    """Train on labelled data, search it and print mAP@All next to faiss IndexLSH (retrieval
    by label, task="labels"), then recall@10 of nearest neighbours (task="neighbors")."""
    if args.plot:
        plots.require_matplotlib()
    if args.mnist:
        x, y = load_mnist(args.mnist)
        name = f"MNIST test set from {args.mnist}"
        per_class = 100
    else:
        x, y = load_digits()
        name = "scikit-learn digits (1,797 8x8 images)"
        per_class = 20
    q, db = label_split(y, per_class)
    xq, xb = x[q], x[db]
    print(f"data: {name}; {len(q)} queries, {len(db)} database/training vectors, d={x.shape[1]}")
    print(f"{'k':>4} {'BioHash mAP%':>13} {'IndexLSH mAP%':>14} {'train s':>8}")
    maps = {"BioHash": [], "faiss IndexLSH": []}
    for k in args.hash_lengths:
        ours, base, t_train = evaluation.labels_vs_lsh(xb, y[db], xq, y[q], k, args.seed)
        print(f"{k:>4} {100 * ours:>13.2f} {100 * base:>14.2f} {t_train:>8.2f}", flush=True)
        maps["BioHash"].append(ours)
        maps["faiss IndexLSH"].append(base)
    if args.plot:
        plots.plot_map_vs_hash_length(args.hash_lengths, maps, args.plot, title=f"mAP@All, {name}")
        print(f"wrote {args.plot}")
    demo_neighbors(xb, xq, args.hash_lengths, args.seed)
    return 0


def demo_neighbors(xb: np.ndarray, xq: np.ndarray, hash_lengths, seed: int) -> None:
    """Print recall@10 of the exact L2 neighbours: the IndexLSH swap (task="neighbors")."""
    print("\nnearest neighbours (recall@10 of the exact L2 top 10), the swap IndexLSH(d, n) ->"
          " BioHashIndex(d, n), no train call:")
    print(f"{'n':>4} {'BioHash':>8} {'IndexLSH':>9} {'IndexLSH same bytes':>20} {'bytes':>6}")
    rows = evaluation.neighbors_vs_lsh(xb, xq, hash_lengths, seed)
    for n, (recalls, code_size) in zip(hash_lengths, rows):
        print(f"{n:>4} {recalls[0]:>8.3f} {recalls[1]:>9.3f} {recalls[2]:>20.3f} "
              f"{code_size:>6}", flush=True)


# ---------------------------------------------------------------- parser
DEFAULTS = {name: prm.default for name, prm in
            inspect.signature(BioHashIndex).parameters.items()}  # one source of truth


def hyperparameter_option(f) -> dict:
    """argparse keywords of the option of a BioHashParams field, from its declaration."""
    constraint = f.metadata["constraint"]
    if isinstance(constraint, Bool):
        kind = dict(action=argparse.BooleanOptionalAction)
    elif isinstance(constraint, OneOf):
        kind = dict(choices=constraint.values)
    else:
        kind = dict(type=int if isinstance(constraint, Int) else float)
    default = "by --task" if f.metadata["tasks"] else DEFAULTS[f.name]
    return dict(kind, default=DEFAULTS[f.name], help=f"{f.metadata['help']} (default: {default})")


def add_index_options(p: argparse.ArgumentParser) -> None:
    """Hyperparameters and storage of a new index (see BioHashIndex)."""
    g = p.add_argument_group("index options (see BioHashIndex)")
    g.add_argument("--task", choices=tuple(TASKS), default=None,
                   help="what the index is for, which sets the defaults of the options below "
                        "(default: neighbors; labels for eval --labels)")
    g.add_argument("--n-hidden", type=int, metavar="M",
                   help="hidden units m (default: k / activity)")
    g.add_argument("--activity", type=float, help="k / m (default: by --task)")
    for f in HYPERPARAMETERS:
        g.add_argument("--" + f.name.replace("_", "-"), **hyperparameter_option(f))
    g.add_argument("--storage", choices=STORAGES, default=DEFAULTS["storage"])
    g.add_argument("--nlist", type=int, default=DEFAULTS["nlist"],
                   help="IVF lists (default: 4 sqrt(training vectors))")
    g.add_argument("--router", choices=ROUTERS, default=DEFAULTS["router"],
                   help="how IVF lists are chosen (default: %(default)s)")
    g.add_argument("--assign", type=int, choices=ASSIGNS, default=DEFAULTS["assign"],
                   help="IVF lists each vector is stored in (default: %(default)s)")


class RenamedFlag(argparse.Action):
    """A flag that was renamed: using it is an error naming the new spelling."""

    def __init__(self, option_strings, dest, new: str, **kwargs):
        super().__init__(option_strings, dest, nargs="?", **kwargs)
        self.new = new

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(f"{option_string} is no longer an option of this command: use {self.new}")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    common.add_argument("-v", "--verbose", action="store_true", help="log what the library does")
    common.add_argument("--debug", action="store_true", help="show the traceback of an error")
    parser = argparse.ArgumentParser(prog="biohash-index", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name, func, help):
        p = sub.add_parser(name, parents=[common], help=help, description=func.__doc__)
        p.set_defaults(func=func)
        return p

    column = dict(metavar="NAME", help="column of a Parquet/Arrow input (default: its list column)")
    p = command("train", train, "train an index on vectors from a file and save it")
    p.add_argument("--input", required=True, metavar="PATH",
                   help="training vectors: a file, or a Parquet/Arrow directory")
    p.add_argument("--column", **column)
    p.add_argument("--out", required=True, metavar="INDEX", help="where to save the index")
    p.add_argument("--force", action="store_true",
                   help="replace --out even if it is an index holding vectors")
    p.add_argument("--hash-length", type=int, default=16, metavar="K",
                   help="active units per code (default 16)")
    p.add_argument("-k", action=RenamedFlag, help=argparse.SUPPRESS,
                   new="--hash-length K (-k is the number of neighbours in search and eval)")
    p.add_argument("--add", action="store_true", help="also add the training vectors")
    p.add_argument("--nprobe", type=int,
                   help="IVF lists probed per query (default: learned at training)")
    add_index_options(p)

    p = command("add", add, "add vectors from a file to a saved index")
    p.add_argument("--index", required=True, metavar="INDEX")
    p.add_argument("--input", required=True, metavar="PATH",
                   help="vectors: a file, or a Parquet/Arrow directory")
    p.add_argument("--column", **column)
    p.add_argument("--ids", metavar="FILE", help="int64 ids, one per vector")
    p.add_argument("--ids-column", metavar="NAME", help="column of a Parquet/Arrow --ids file")
    p.add_argument("--out", metavar="INDEX", help="save here instead of overwriting --index")
    p.add_argument("--force", action="store_true",
                   help="replace --out even if it is another index holding vectors")

    p = command("search", search, "search a saved index")
    p.add_argument("--index", required=True, metavar="INDEX")
    p.add_argument("--queries", required=True, metavar="FILE")
    p.add_argument("--column", **column)
    p.add_argument("-k", type=int, default=10, help="neighbours per query (default 10)")
    p.add_argument("--nprobe", type=int, help="IVF lists probed per query")
    p.add_argument("--out", metavar="FILE",
                   help="results: .npy (ids) or .parquet/.arrow/.feather (ids and distances)")

    p = command("info", info, "describe a saved index")
    p.add_argument("index", metavar="INDEX")
    p.add_argument("--plot", metavar="FILE.png", help="draw the per-epoch training statistics")

    p = command("eval", evaluate, "mAP or recall@k, per hash length or of a saved index")
    p.add_argument("--index", metavar="INDEX", help="a saved index holding the database")
    p.add_argument("--base", metavar="FILE", help="database vectors: train one index per "
                   "hash length on them (or on --train) and add them")
    p.add_argument("--train", metavar="FILE", help="training vectors (default: --base)")
    p.add_argument("--queries", metavar="FILE", help="query vectors")
    p.add_argument("--column", **column)
    p.add_argument("--labels", metavar="FILE", help="labels of the database (id i: row i)")
    p.add_argument("--query-labels", metavar="FILE")
    p.add_argument("--split", type=int, default=100, metavar="N", help="without --queries, "
                   "the first N vectors of each label of --base are the queries (default 100)")
    p.add_argument("--R", type=int, help="mAP over the top R results (default: all)")
    p.add_argument("--gt", metavar="FILE", help="true nearest neighbours of each query (ivecs)")
    p.add_argument("-k", type=int, default=10, help="recall@k (default 10)")
    p.add_argument("--hash-lengths", type=int, nargs="+", default=[2, 4, 8, 16, 32],
                   metavar="K")
    p.add_argument("--nprobe", type=int, help="IVF lists probed per query")
    p.add_argument("--plot", metavar="FILE.png",
                   help="mAP versus hash length, or recall versus queries per second")
    add_index_options(p)

    p = command("demo", demo, "train, search and compare with faiss IndexLSH")
    p.add_argument("--mnist", metavar="DIR", help="folder with the MNIST t10k IDX files "
                   "(default: scikit-learn's bundled digits)")
    p.add_argument("--hash-lengths", type=int, nargs="+", default=[2, 4, 8, 16, 32])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", metavar="FILE.png", help="draw mAP versus hash length")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(name)s: %(message)s")
    try:
        set_progress(False if args.quiet else None)
        return args.func(args)
    except BrokenPipeError:  # e.g. piped into head: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print("biohash-index: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if args.debug:
            raise
        known = (ValueError, TypeError, OSError, RuntimeError, ImportError, AttributeError)
        msg = " ".join(str(e).split()) or type(e).__name__
        if not isinstance(e, known):
            msg = f"{type(e).__name__}: {msg}"
        print(f"biohash-index: error: {msg} (--debug shows the traceback)", file=sys.stderr)
        return 1
