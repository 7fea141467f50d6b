"""The ``biohash-index`` command, driven through subprocess on real files, and its helpers
(file loading, progress bars, plots) in-process."""
import io
import os
import re
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.feather
import pyarrow.parquet
import pytest

from biohash_index import BioHashIndex
from biohash_index import _progress as progress_mod
from biohash_index.cli import build_parser, index_kwargs
from biohash_index.datasets import load_vectors, read_fvecs, read_ivecs
from biohash_index.evaluation import mean_average_precision, recall_at_k
from biohash_index import read_index
from biohash_index._model import HYPERPARAMETERS, RULE_ONLY, Bool, OneOf

from .conftest import data_path
from .test_index import changed_value

PNG = b"\x89PNG\r\n\x1a\n"


def run(*args, cwd, ok=True):
    """Run ``python -m biohash_index ARGS`` in cwd; check the exit code is 0 (ok) or not."""
    r = subprocess.run([sys.executable, "-m", "biohash_index", *map(str, args)], cwd=cwd,
                       capture_output=True, text=True, timeout=300)
    assert (r.returncode == 0) == ok, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def write_vecs(path, x):
    """Write (n, d) int32/float32/uint8 rows in the fvecs/ivecs/bvecs layout."""
    x = np.ascontiguousarray(x)
    dim = np.full((len(x), 1), x.shape[1], np.int32).view(np.uint8)
    np.hstack([dim, x.view(np.uint8).reshape(len(x), -1)]).tofile(path)


def table_value(stdout, row, col):
    """A number from the table that eval or demo prints (row 0: the first row of results)."""
    lines = stdout.splitlines()
    header = next(i for i, ln in enumerate(lines) if ln.split()[0] == "k")
    return float(lines[header + 1 + row].split()[col])


# ---------------------------------------------------------------- load_vectors
def test_load_vectors_reads_every_format_alike(tmp_path):
    rng = np.random.default_rng(0)
    xb = rng.integers(0, 256, (7, 5)).astype(np.uint8)
    x = xb.astype(np.float32) / 7
    np.save(tmp_path / "x.npy", x)
    write_vecs(tmp_path / "x.fvecs", x)
    write_vecs(tmp_path / "x.bvecs", xb)
    write_vecs(tmp_path / "x.ivecs", xb.astype(np.int32))
    table = pa.table({"id": np.arange(7) * 10,
                      "emb": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 5),
                      "emb_list": pa.array(list(x))})
    pyarrow.parquet.write_table(table, tmp_path / "x.parquet")
    pyarrow.feather.write_feather(table, tmp_path / "x.arrow")
    for name in ("x.npy", "x.fvecs"):
        np.testing.assert_array_equal(load_vectors(tmp_path / name), x)
    np.testing.assert_array_equal(load_vectors(tmp_path / "x.bvecs"), xb)
    np.testing.assert_array_equal(load_vectors(tmp_path / "x.ivecs"), xb)
    for name in ("x.parquet", "x.arrow"):
        np.testing.assert_array_equal(load_vectors(tmp_path / name, "emb"), x)
        np.testing.assert_array_equal(load_vectors(tmp_path / name, "emb_list"), x)
        np.testing.assert_array_equal(load_vectors(tmp_path / name, "id"), np.arange(7) * 10)
        with pytest.raises(ValueError, match="exactly one list-typed column"):
            load_vectors(tmp_path / name)  # two list columns: ambiguous
        with pytest.raises(ValueError, match="column 'nope' is not in the data"):
            load_vectors(tmp_path / name, "nope")
    pyarrow.parquet.write_table(table.select(["emb"]), tmp_path / "one.parquet")
    np.testing.assert_array_equal(load_vectors(tmp_path / "one.parquet"), x)


def test_load_vectors_reads_mnist_idx():
    images = load_vectors(data_path("mnist", "t10k-images-idx3-ubyte.gz"))
    labels = load_vectors(data_path("mnist", "t10k-labels-idx1-ubyte.gz"))
    assert images.shape == (10000, 784) and images.dtype == np.uint8
    assert labels.shape == (10000,) and set(np.unique(labels)) == set(range(10))


def test_load_vectors_rejects_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        load_vectors(tmp_path / "missing.npy")
    (tmp_path / "x.csv").write_text("1,2\n")
    with pytest.raises(ValueError, match="unknown file type"):
        load_vectors(tmp_path / "x.csv")
    ragged = pa.table({"emb": pa.array([[1.0, 2.0], [3.0]])})
    pyarrow.parquet.write_table(ragged, tmp_path / "ragged.parquet")
    with pytest.raises(ValueError, match="some rows have another length"):
        load_vectors(tmp_path / "ragged.parquet")
    holes = pa.table({"emb": pa.array([[1.0, 2.0], None])})
    pyarrow.parquet.write_table(holes, tmp_path / "holes.parquet")
    with pytest.raises(ValueError, match="null rows"):
        load_vectors(tmp_path / "holes.parquet")
    np.save(tmp_path / "obj.npy", np.array([{}, 1], dtype=object))
    with pytest.raises(ValueError, match="pickle"):
        load_vectors(tmp_path / "obj.npy")  # never unpickles


# ---------------------------------------------------------------- progress
@pytest.fixture
def restore_progress():
    yield
    progress_mod.set_progress(None)


def test_progress_wraps_only_when_enabled(restore_progress, monkeypatch):
    from tqdm import tqdm
    items = range(5)
    progress_mod.set_progress(None)  # automatic: bars only on a terminal
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert progress_mod.progress(items, "x") is items
    progress_mod.set_progress(True)
    bar = progress_mod.progress(items, "x")
    assert isinstance(bar, tqdm) and list(bar) == list(items)
    progress_mod.set_progress(False)
    assert progress_mod.progress(items, "x") is items
    with pytest.raises(TypeError, match="enabled"):
        progress_mod.set_progress("yes")


def run_in_terminal(code, cwd):
    """Run python code with stdin/stdout/stderr on a pseudo-terminal; (exit code, output)."""
    if sys.platform == "win32":
        pytest.skip("needs a POSIX pseudo-terminal")
    import fcntl
    import pty
    import struct
    import termios
    main_fd, sub_fd = pty.openpty()
    fcntl.ioctl(sub_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    p = subprocess.Popen([sys.executable, "-c", code], cwd=cwd, stdin=sub_fd, stdout=sub_fd,
                         stderr=sub_fd)
    os.close(sub_fd)
    out = b""
    while True:
        try:
            chunk = os.read(main_fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(main_fd)
    return p.wait(timeout=300), out.decode(errors="replace")


@pytest.mark.parametrize("quiet", [False, True])
def test_training_shows_a_progress_bar_on_a_terminal_unless_quiet(tmp_path, quiet):
    args = ["train", "--input", "x.npy", "--out", "x.idx", "--hash-length", "2", "--epochs", "3"]
    code = ("import sys, numpy as np; from biohash_index import _progress as progress; "
            "from biohash_index.cli import main; progress.DELAY = 0; "
            "np.save('x.npy', np.random.default_rng(0).standard_normal((300, 16)).astype('f4')); "
            f"sys.exit(main({args + ['--quiet'] * quiet!r}))")
    status, out = run_in_terminal(code, tmp_path)
    assert status == 0, out
    assert "trained on 300 vectors" in out
    assert ("training:" in out and "/3 [" in out) != quiet, out


def test_library_works_without_tqdm(monkeypatch, restore_progress, clustered):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm now fails
    monkeypatch.setattr(progress_mod, "_have_tqdm", lambda: False)
    with pytest.raises(ImportError, match=r"biohash-index\[progress\]"):
        progress_mod.set_progress(True)
    index = BioHashIndex(32, 4, n_hidden=64, epochs=2)
    index.train(clustered[0])
    index.add(clustered[0])
    assert index.ntotal == len(clustered[0])


# ---------------------------------------------------------------- commands on real files
@pytest.fixture(scope="module")
def fmnist_index(tmp_path_factory):
    """Indexes made by the command from Fashion-MNIST fvecs files: (folder, trained and
    empty, trained and filled with the 1,000 base vectors)."""
    base = data_path("fmnistsmall", "fmnistsmall_base.fvecs")
    tmp = tmp_path_factory.mktemp("cli")
    run("train", "--input", base, "--out", "empty.idx", "--hash-length", 4, "--epochs", 3,
        "--seed", 1, cwd=tmp)
    run("add", "--index", "empty.idx", "--input", base, "--out", "full.idx", cwd=tmp)
    return tmp, tmp / "empty.idx", tmp / "full.idx"


def test_train_add_info(fmnist_index):
    tmp, empty, full = fmnist_index
    assert read_index(empty).ntotal == 0  # add --out left the original alone
    assert read_index(full).ntotal == 1000
    out = run("info", empty, "--plot", "stats.png", cwd=tmp).stdout
    for pattern in (r"ntotal +0\n", r"hash_length \(k\) +4\n", r"n_hidden \(m\) +8\n",
                    r"seed +1\n", r"won_fraction +3 epochs", r"max_norm_error +3 epochs"):
        assert re.search(pattern, out), pattern
    assert (tmp / "stats.png").read_bytes().startswith(PNG)


def test_search_writes_what_the_library_returns(fmnist_index):
    tmp, _, full = fmnist_index
    queries = data_path("fmnistsmall", "fmnistsmall_query.fvecs")
    D, I = read_index(full).search(read_fvecs(queries), 7)
    search = ("search", "--index", full, "--queries", queries, "-k", 7)
    run(*search, "--out", "res.npy", cwd=tmp)
    np.testing.assert_array_equal(np.load(tmp / "res.npy"), I)
    run(*search, "--out", "res.parquet", cwd=tmp)
    np.testing.assert_array_equal(load_vectors(tmp / "res.parquet", "ids"), I)
    np.testing.assert_array_equal(load_vectors(tmp / "res.parquet", "distances"), D)
    lines = run(*search, cwd=tmp).stdout.splitlines()
    assert len(lines) == 1 + len(I)
    q, ids, dist = lines[3].split("\t")
    assert q == "2" and list(map(int, ids.split())) == I[2].tolist()
    assert list(map(float, dist.split())) == D[2].tolist()


def test_eval_recall_of_saved_index_matches_library(fmnist_index):
    tmp, _, full = fmnist_index
    queries = data_path("fmnistsmall", "fmnistsmall_query.fvecs")
    gt = data_path("fmnistsmall", "fmnistsmall_groundtruth.ivecs")
    out = run("eval", "--index", full, "--queries", queries, "--gt", gt, "-k", 10,
              "--plot", "recall.png", cwd=tmp).stdout
    _, I = read_index(full).search(read_fvecs(queries), 10)
    expected = 100 * recall_at_k(I, read_ivecs(gt), 10)
    assert "500 queries; recall@10" in out
    assert table_value(out, 0, 2) == pytest.approx(expected, abs=0.006)
    assert (tmp / "recall.png").read_bytes().startswith(PNG)


def test_train_from_parquet_and_ids_match_library(tmp_path, clustered):
    """Hyperparameters given on the command line reach the index: the codes equal those of
    an index built in-process with the same settings."""
    x, _ = clustered
    ids = np.arange(len(x), dtype=np.int64) * 3 + 5
    table = pa.table({"id": ids, "emb": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 32)})
    pyarrow.parquet.write_table(table, tmp_path / "x.parquet")
    run("train", "--input", "x.parquet", "--column", "emb", "--out", "x.idx", "--hash-length", 3,
        "--n-hidden", 48, "--epochs", 4, "--batch-size", 50, "--p", 3, "--delta", 0.1,
        "--seed", 7, cwd=tmp_path)
    run("add", "--index", "x.idx", "--input", "x.parquet", "--column", "emb",
        "--ids", "x.parquet", "--ids-column", "id", cwd=tmp_path)
    saved = read_index(tmp_path / "x.idx")
    ref = BioHashIndex(32, 3, n_hidden=48, epochs=4, batch_size=50, p=3.0, delta=0.1, seed=7)
    ref.train(x)
    np.testing.assert_array_equal(saved.sa_encode(x), ref.sa_encode(x))
    _, I = saved.search(x[:5], 1)
    assert set(I[:, 0]) <= set(ids.tolist()) and saved.ntotal == len(x)


def test_eval_map_per_hash_length_with_split(tmp_path):
    pytest.importorskip("sklearn")
    from biohash_index.datasets import label_split, load_digits
    x, y = load_digits()
    np.save(tmp_path / "digits.npy", x)
    np.save(tmp_path / "labels.npy", y)
    out = run("eval", "--base", "digits.npy", "--labels", "labels.npy", "--split", 20,
              "--hash-lengths", 2, 8, "--epochs", 5, "--plot", "map.png", cwd=tmp_path).stdout
    q, db = label_split(y, 20)
    index = BioHashIndex(64, 8, epochs=5, task="labels")   # eval --labels: that task's defaults
    index.train(x[db])
    index.add(x[db])
    _, I = index.search(x[q], len(db))
    expected = 100 * mean_average_precision(I, y[db], y[q])
    assert "mAP@All" in out and "200 queries" in out
    assert table_value(out, 1, 0) == 8 and table_value(out, 1, 1) == 160
    assert table_value(out, 1, 2) == pytest.approx(expected, abs=0.006)
    assert (tmp_path / "map.png").read_bytes().startswith(PNG)


def test_demo_runs_and_plots(tmp_path):
    pytest.importorskip("sklearn")
    out = run("demo", "--hash-lengths", 4, "--plot", "demo.png", cwd=tmp_path).stdout
    assert "IndexLSH mAP%" in out and "wrote demo.png" in out
    ours, lsh = table_value(out, 0, 1), table_value(out, 0, 2)
    assert 0 < lsh < ours <= 100
    assert (tmp_path / "demo.png").read_bytes().startswith(PNG)


# ---------------------------------------------------------------- errors
def test_errors_are_one_line_with_nonzero_exit(fmnist_index):
    tmp, path, _ = fmnist_index
    sift = data_path("siftsmall", "siftsmall_query.fvecs")
    cases = [
        (["info", "missing.idx"], "missing.idx"),
        (["search", "--index", path, "--queries", sift], "dimension 128, the index has d=784"),
        (["train", "--input", sift, "--out", "x.idx", "--hash-length", 0],
         "hash_length must be >= 1"),
        (["search", "--index", path, "--queries", sift, "--out", "r.csv"], "--out must end"),
    ]
    for args, message in cases:
        r = run(*args, cwd=tmp, ok=False)
        assert r.returncode == 1
        assert r.stderr.startswith("biohash-index: error:") and message in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    r = run("info", "missing.idx", "--debug", cwd=tmp, ok=False)
    assert "Traceback" in r.stderr and "FileNotFoundError: missing.idx: no such index" in r.stderr


def test_missing_matplotlib_is_a_clear_error(fmnist_index):
    tmp, path, _ = fmnist_index
    code = ("import sys; sys.modules['matplotlib'] = None; from biohash_index.cli import main; "
            f"sys.exit(main(['info', {str(path)!r}, '--plot', 'x.png']))")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 1 and "pip install 'biohash-index[plot]'" in r.stderr


# ---------------------------------------------------------------- flags, streaming, safety
def test_k_has_one_meaning(tmp_path, clustered):
    np.save(tmp_path / "x.npy", clustered[0])
    r = run("train", "--input", "x.npy", "--out", "x.idx", "-k", 4, cwd=tmp_path, ok=False)
    assert "-k is no longer an option of this command: use --hash-length K" in r.stderr
    assert not (tmp_path / "x.idx").exists()
    run("train", "--input", "x.npy", "--out", "x.idx", "--hash-length", 4, "--epochs", 2,
        "--add", cwd=tmp_path)
    out = run("search", "--index", "x.idx", "--queries", "x.npy", "-k", 3, cwd=tmp_path).stdout
    assert len(out.splitlines()[1].split("\t")[1].split()) == 3     # -k: neighbours


def test_train_and_add_stream_a_parquet_directory(tmp_path, clustered):
    """A directory of Parquet files is streamed: the codes equal those of an index trained
    in-process with ``train_from`` on the same directory."""
    x, _ = clustered
    folder = tmp_path / "emb"
    folder.mkdir()
    for i in range(3):
        part = x[200 * i:200 * (i + 1)]
        pyarrow.parquet.write_table(pa.table({
            "id": np.arange(200 * i, 200 * (i + 1)) + 10**6,
            "emb": pa.array(list(part), pa.list_(pa.float32()))}), folder / f"part-{i}.parquet")
    run("train", "--input", "emb", "--out", "x.idx", "--hash-length", 4, "--n-hidden", 64,
        "--epochs", 3, "--add", cwd=tmp_path)
    saved = read_index(tmp_path / "x.idx")
    ref = BioHashIndex(32, 4, n_hidden=64, epochs=3)
    ref.train_from(folder)
    np.testing.assert_array_equal(saved.sa_encode(x), ref.sa_encode(x))
    assert saved.ntotal == 600
    run("add", "--index", "x.idx", "--input", "emb", "--column", "emb", "--ids", "emb",
        "--ids-column", "id", "--out", "y.idx", cwd=tmp_path)
    both = read_index(tmp_path / "y.idx")
    assert both.ntotal == 1200 and both.search(x[:1], 1)[1][0, 0] in (0, 10**6)


def test_train_refuses_to_replace_an_index_holding_vectors(tmp_path, clustered):
    np.save(tmp_path / "x.npy", clustered[0])
    train = ("train", "--input", "x.npy", "--out", "x.idx", "--hash-length", 4, "--epochs", 2)
    run(*train, cwd=tmp_path)
    run(*train, "--add", cwd=tmp_path)                  # an empty index may be replaced
    r = run(*train, cwd=tmp_path, ok=False)
    assert "x.idx is an index holding 600 vectors" in r.stderr and "--force" in r.stderr
    assert read_index(tmp_path / "x.idx").ntotal == 600
    run(*train, "--force", cwd=tmp_path)
    assert read_index(tmp_path / "x.idx").ntotal == 0
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    r = run(*train[:4], "other", *train[5:], cwd=tmp_path, ok=False)
    assert "exists and is not a readable index" in r.stderr
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


def test_add_out_refuses_to_replace_another_index_holding_vectors(tmp_path, clustered):
    """Issue: ``add --index A --out B`` replaced B, which held 200 vectors, with rc 0."""
    x = clustered[0]
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "b.npy", x[:200])
    for name, data in (("a.idx", "x.npy"), ("b.idx", "b.npy")):
        run("train", "--input", data, "--out", name, "--hash-length", 4, "--epochs", 2, "--add",
            cwd=tmp_path)
    add = ("add", "--index", "a.idx", "--input", "x.npy", "--ids", "ids.npy")
    np.save(tmp_path / "ids.npy", np.arange(10**6, 10**6 + 600))
    r = run(*add, "--out", "b.idx", cwd=tmp_path, ok=False)
    assert "b.idx is an index holding 200 vectors" in r.stderr and "--force" in r.stderr
    assert read_index(tmp_path / "b.idx").ntotal == 200
    run(*add, "--out", "./a.idx", cwd=tmp_path)        # --out naming --index is no replacement
    assert read_index(tmp_path / "a.idx").ntotal == 1200
    run(*add[:-2], "--out", "b.idx", "--force", cwd=tmp_path)
    assert read_index(tmp_path / "b.idx").ntotal == 1800


def test_missing_index_version_and_help(tmp_path):
    for args in (["info", "nope.idx"], ["search", "--index", "nope.idx", "--queries", "q.npy"],
                 ["add", "--index", "nope.idx", "--input", "x.npy"]):
        r = run(*args, cwd=tmp_path, ok=False)
        assert "nope.idx: no such index" in r.stderr, r.stderr
    from biohash_index import __version__
    assert run("--version", cwd=tmp_path).stdout.strip() == f"biohash-index {__version__}"
    for command in ([], ["train"], ["add"], ["search"], ["info"], ["eval"], ["demo"]):
        text = run(*command, "-h", cwd=tmp_path).stdout
        assert "``" not in text and "usage: biohash-index" in text


def test_eval_plot_without_matplotlib_fails_before_the_work(tmp_path, clustered):
    np.save(tmp_path / "x.npy", clustered[0])
    np.save(tmp_path / "y.npy", clustered[1])
    code = ("import sys; sys.modules['matplotlib'] = None; from biohash_index.cli import main; "
            "sys.exit(main(['eval', '--base', 'x.npy', '--labels', 'y.npy', '--split', '5', "
            "'--hash-lengths', '4', '--plot', 'x.png']))")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 1 and "pip install 'biohash-index[plot]'" in r.stderr
    assert r.stdout == ""                               # no table: nothing was trained


def test_eval_times_a_warm_search(monkeypatch, tmp_path, clustered):
    """The timed search is not the first one: a warm-up search runs before it."""
    from biohash_index import cli, evaluation
    calls = []
    real = BioHashIndex.search
    monkeypatch.setattr(BioHashIndex, "search",
                        lambda self, xq, k, **kw: calls.append(len(xq)) or real(self, xq, k))
    monkeypatch.setattr(evaluation.time, "perf_counter", lambda: len(calls))
    index = BioHashIndex(32, 4, n_hidden=64, epochs=2)
    index.train(clustered[0])
    index.add(clustered[0])
    _, _, _, qps = cli.eval_row(index, clustered[0][:50], 5, lambda I: 0.0, None)
    assert calls == [evaluation.WARMUP_QUERIES, 50]
    assert qps == 50                                    # the clock ticked for one search only


@pytest.mark.parametrize("command", ["train", "eval"])
def test_every_hyperparameter_is_an_option(command, capsys):
    """The index options come from BioHashParams's declarations: one per hyperparameter, in
    -h with its help, choices as declared, and each reaches BioHashIndex."""
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args([command, "-h"])
    usage = " ".join(capsys.readouterr().out.split())
    required = ["--input", "x", "--out", "y"] if command == "train" else []
    defaults = index_kwargs(parser.parse_args([command, *required]))
    argv, expected = [command, *required, "--task", "labels"], {}
    labels = BioHashIndex(32, 4, task="labels").params
    for f in HYPERPARAMETERS:
        option = "--" + f.name.replace("_", "-")
        help_start = " ".join(f.metadata["help"].split())[:30]
        assert f"{option} " in usage and help_start in usage
        constraint = f.metadata["constraint"]
        if isinstance(constraint, OneOf):
            assert "{" + ",".join(constraint.values) + "}" in usage
        assert (f.name in defaults) == (not f.metadata["tasks"])
        value = expected[f.name] = changed_value(f, getattr(labels, f.name))
        if isinstance(constraint, Bool):
            argv.append(option if value else f"--no-{f.name}")
        else:
            argv += [option, str(value)]
    kwargs = index_kwargs(parser.parse_args(argv))
    assert {name: kwargs[name] for name in expected} == expected
    params = BioHashIndex(32, 4, **kwargs).params
    assert {name: getattr(params, name) for name in expected} == expected
    with pytest.raises(SystemExit):
        parser.parse_args([command, *required, "--init", "zeros"])


def test_info_prints_every_hyperparameter(tmp_path, capsys):
    from biohash_index import cli
    index = BioHashIndex(8, 2, task="labels", spread=0.25, seed=7)
    index.save(tmp_path / "index")
    assert cli.main(["info", str(tmp_path / "index")]) == 0
    rows = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines()
                if line.split(None, 1)[0] in {f.name for f in HYPERPARAMETERS})
    assert rows == {f.name: str(getattr(index.params, f.name)) for f in HYPERPARAMETERS}


def test_info_shows_what_applies_and_says_why_there_is_no_plot(tmp_path, capsys, clustered):
    """An index of task="neighbors" runs no epochs of the learning rule: info leaves out the
    rule's hyperparameters, and --plot says there is nothing to draw."""
    from biohash_index import cli
    index = BioHashIndex(32, 8)
    index.train(clustered[0])
    index.save(tmp_path / "nn")
    assert cli.main(["info", str(tmp_path / "nn")]) == 0
    shown = {line.split(None, 1)[0] for line in capsys.readouterr().out.splitlines()}
    fields = {f.name for f in HYPERPARAMETERS}
    assert shown & fields == fields - set(RULE_ONLY) and set(RULE_ONLY) < fields
    assert cli.main(["info", str(tmp_path / "nn"), "--plot", str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err
    assert "ran no epochs of the learning rule (epochs=0" in err and "drop --plot" in err
    assert not (tmp_path / "x.png").exists()


def test_search_of_an_empty_index_says_so(tmp_path, capsys, clustered):
    from biohash_index import cli
    index = BioHashIndex(32, 8)
    index.train(clustered[0])
    index.save(tmp_path / "empty")
    np.save(tmp_path / "q.npy", clustered[0][:3])
    assert cli.main(["search", "--index", str(tmp_path / "empty"), "--queries",
                     str(tmp_path / "q.npy"), "-k", "2"]) == 0
    out, err = capsys.readouterr()
    assert "holds no vectors: every id is -1" in err
    assert [line.split("\t")[1] for line in out.splitlines()[1:]] == ["-1 -1"] * 3


@pytest.mark.parametrize("name, version", [("v1-flat.index", 1), ("v3-flat.bhx", 3),
                                           (None, 4), ("file", 4)])
def test_info_reports_the_format_version_of_the_file(tmp_path, capsys, name, version):
    """Issue: info printed the library's format version, 2, for a file of version 1; the
    one-file form has its version too."""
    import shutil
    from pathlib import Path
    from biohash_index import cli
    path = tmp_path / ("index.bhx" if name == "file" else "index")
    if name == "file" or name is None:
        BioHashIndex(8, 2, task="labels").save(path)
    elif name.endswith(".bhx"):
        path = Path(shutil.copy(Path(__file__).parent / "data" / name, tmp_path / name))
    else:
        shutil.copytree(Path(__file__).parent / "data" / name, path)
    assert cli.main(["info", str(path)]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("saved index"))
    assert line.endswith(f"format version {version})")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_called_what_it_is(tmp_path, clustered):
    """Issue: the command called an existing FIFO "no such file"."""
    os.mkfifo(tmp_path / "fifo.npy")
    np.save(tmp_path / "q.npy", clustered[0][:2])
    for args in (["train", "--input", "fifo.npy", "--out", "x.idx"], ["info", "fifo.npy"],
                 ["search", "--index", "fifo.npy", "--queries", "q.npy"]):
        r = run(*args, cwd=tmp_path, ok=False)
        assert "no such" not in r.stderr and "fifo.npy: not a" in r.stderr, r.stderr
