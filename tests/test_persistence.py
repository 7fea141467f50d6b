"""Saving and loading: round trips, the on-disk format, crash safety and corruption."""
import copy
import hashlib
import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa
import pytest

import biohash_index._formats.index_dir as index_dir
from biohash_index._formats.index import checksum
from biohash_index import (BioHashFormatError, BioHashIndex, deserialize_index, read_index,
                           serialize_index, write_index)

REPO = Path(__file__).resolve().parents[1]
FILES = ("manifest.json", "model.arrow", "meta.arrow", "codes.faiss")


# ==================================================================== helpers
def build(xb, storage="flat", n_add=None, remove=(), **kw):
    """A trained index on xb (d=32, k=4, m=64) holding xb[:n_add] minus ``remove``."""
    kw = {"n_hidden": 64, "epochs": 3, "nlist": 8, "nprobe": 3, **kw}
    index = BioHashIndex(32, 4, storage=storage, **kw)
    index.train(xb)
    index.add(xb[:n_add])
    index.remove_ids(np.asarray(remove, np.int64))
    return index


def assert_same(a: BioHashIndex, b: BioHashIndex, xq=None):
    """Everything persisted is equal: parameters, learned state, ids, codes, results."""
    assert a.params == b.params
    assert (a.ntotal, a._next_id, a.is_trained) == (b.ntotal, b._next_id, b.is_trained)
    assert (a.storage.kind, a.n_threads) == (b.storage.kind, b.n_threads)
    if a.storage.kind == "ivf":
        assert (a.storage.nlist, a.nprobe) == (b.storage.nlist, b.nprobe)
    for x, y in [(a.model.mean_, b.model.mean_), (a.model.weights_, b.model.weights_)]:
        assert (x is None and y is None) or np.array_equal(x, y)
    assert a.model.train_stats_.keys() == b.model.train_stats_.keys()
    for key, value in a.model.train_stats_.items():
        np.testing.assert_array_equal(value, b.model.train_stats_[key])
    np.testing.assert_array_equal(a.storage.ids(), b.storage.ids())
    np.testing.assert_array_equal(a.storage.codes(), b.storage.codes())
    if a.is_trained and xq is not None:
        for r, s in zip(a.search(xq, 10), b.search(xq, 10)):
            np.testing.assert_array_equal(r, s)


def fingerprint(index: BioHashIndex) -> str:
    """sha256 of everything an index holds and of its answers to fixed queries."""
    h = hashlib.sha256(serialize_index(index))
    if index.is_trained:
        xq = np.random.default_rng(1).standard_normal((8, index.d)).astype(np.float32)
        for arr in index.search(xq, 5):
            h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def report_loads(paths):
    """Run in a child process: load each path (a directory, or serialized bytes in a file
    ending in .bin) and print one JSON line per path: ok + fingerprint, format error, or
    any other exception."""
    for path in paths:
        print(json.dumps(["start", path]), flush=True)
        try:
            index = (deserialize_index(Path(path).read_bytes()) if path.endswith(".bin")
                     else read_index(path))
            out = ["ok", fingerprint(index)]
        except BioHashFormatError as e:
            out = ["format", str(e)]
        except BaseException as e:  # noqa: BLE001 - reported to the parent as a failure
            out = ["other", f"{type(e).__name__}: {e}"]
        print(json.dumps(out), flush=True)


def load_in_subprocess(paths, timeout=120, memory=None):
    """{path: (status, detail)} from ``report_loads`` in a child; a crash or a hang of the
    child fails the test, naming the path being loaded. memory: a limit on the child's
    address space in bytes (POSIX), so that a runaway allocation fails there."""
    code = "import sys; from tests.test_persistence import report_loads; report_loads(sys.argv[1:])"
    if memory is not None:
        code = (f"import resource; resource.setrlimit(resource.RLIMIT_AS, ({memory}, {memory}))"
                f"\n{code}")
    return run_reporting_child(code, list(map(str, paths)), timeout)


def run_reporting_child(code: str, args: list[str], timeout: float) -> dict:
    """{arg: the child's report line as a tuple}: run ``python -c code args`` in the
    repository; the child prints ["start", arg] then its report, one JSON line each. A
    crash or a hang fails the test naming the arg the child was on."""
    try:
        proc = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else e.stdout or ""
        started = [json.loads(line)[1] for line in out.splitlines() if '"start"' in line]
        pytest.fail(f"loader hung on {started[-1] if started else None}")
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    started = [line[1] for line in lines if line[0] == "start"]
    assert proc.returncode == 0, (f"loader crashed (rc={proc.returncode}) on "
                                  f"{started[-1] if started else None}: {proc.stderr[-2000:]}")
    results = [tuple(line) for line in lines if line[0] != "start"]
    return dict(zip(started, results))


def generation(path: Path) -> Path:
    return path / (path / "CURRENT").read_text().strip()


@pytest.fixture(scope="module")
def xb(clustered):
    return clustered[0]


@pytest.fixture(scope="module")
def flat(xb):
    return build(xb)


@pytest.fixture(scope="module")
def ivf(xb):
    return build(xb, storage="ivf")


# ==================================================================== round trips
CASES = {
    "flat": lambda xb: build(xb),
    "ivf": lambda xb: build(xb, storage="ivf"),
    "flat-removed": lambda xb: build(xb, remove=np.arange(0, 600, 3)),
    "ivf-removed": lambda xb: build(xb, storage="ivf", remove=np.arange(0, 600, 3)),
    "flat-empty": lambda xb: build(xb, n_add=0),
    "ivf-emptied": lambda xb: build(xb, storage="ivf", remove=np.arange(600)),
    "untrained": lambda xb: BioHashIndex(32, 4, n_hidden=64),
    "ivf-untrained": lambda xb: BioHashIndex(32, 4, n_hidden=64, storage="ivf", nlist=8),
    "inverted-removed": lambda xb: build(xb, storage="inverted", n_threads=1,
                                         remove=np.arange(0, 600, 3)),
    "other-params": lambda xb: build(xb, n_hidden=70, p=3.0, delta=0.1, rank=3, epochs=None,
                                     batch_size=50, learning_rate=0.05, seed=7,
                                     init="gaussian", center=False),
}


def save_load(index, path):
    index.save(path)
    return BioHashIndex.load(path)


def write_read(index, path):
    write_index(index, path)
    return read_index(path)


ROUND_TRIPS = {
    "save-load": save_load,
    "write-read": write_read,
    "serialize": lambda index, path: deserialize_index(serialize_index(index)),
    "pickle": lambda index, path: pickle.loads(pickle.dumps(index)),
}


@pytest.fixture(scope="module")
def built(xb):
    """The indexes of CASES, each built once for all round trips (which leave it as it is)."""
    cache = {}

    def get(case):
        if case not in cache:
            cache[case] = CASES[case](xb)
        return cache[case]
    return get


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("how", ROUND_TRIPS)
def test_round_trip(case, how, built, xb, tmp_path):
    index = built(case)
    clone = ROUND_TRIPS[how](index, tmp_path / "idx")
    assert_same(index, clone, xb[:50])


def test_loading_never_unpickles(flat, tmp_path, monkeypatch):
    flat.save(tmp_path / "a")
    blob = serialize_index(flat)

    def refuse(*args, **kw):
        raise AssertionError("pickle used on the load path")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    assert read_index(tmp_path / "a").ntotal == deserialize_index(blob).ntotal == flat.ntotal


def test_write_index_checks_its_argument(tmp_path):
    with pytest.raises(TypeError, match="index must be a BioHashIndex"):
        write_index("not an index", tmp_path / "a")
    assert not (tmp_path / "a").exists()


def test_loaded_index_keeps_working(ivf, xb, tmp_path):
    ivf.save(tmp_path / "a")
    index = BioHashIndex.load(tmp_path / "a")
    index.nprobe = 8
    assert index.remove_ids(np.arange(100)) == 100
    index.add_with_ids(xb[:10], np.arange(1000, 1010))
    index.add(xb[10:20])
    assert {1000, 1019} <= set(index.storage.ids().tolist())
    index.save(tmp_path / "a")
    assert_same(index, read_index(tmp_path / "a"), xb[:50])


def test_retraining_a_loaded_index_replaces_the_mapped_weights(flat, xb, tmp_path):
    flat.save(tmp_path / "a")
    index = read_index(tmp_path / "a")
    assert not index.model.weights_.flags.writeable  # a view of the memory-mapped file
    index.reset()
    index.train(xb[::-1])
    assert index.model.weights_.flags.writeable


def test_files_are_plain_arrow_and_faiss(flat, tmp_path):
    """The documented layout: plain pyarrow and faiss read the files of the generation."""
    import faiss
    flat.save(tmp_path / "a")
    gen = generation(tmp_path / "a")
    assert sorted(os.listdir(tmp_path / "a")) == ["BIOHASH_INDEX", "CURRENT", "LOCK", gen.name]
    assert sorted(os.listdir(gen)) == sorted(FILES)
    model = pa.ipc.open_file(str(gen / "model.arrow")).read_all()
    assert model["format_version"][0].as_py() == 4
    assert model["n_hidden"][0].as_py() == 64 and model["p"][0].as_py() == flat.params.p
    W = np.array(model["weights"][0].as_py(), np.float32)
    np.testing.assert_array_equal(W, flat.model.weights_)
    np.testing.assert_array_equal(model["mean"][0].as_py(), flat.model.mean_)
    np.testing.assert_array_equal(model["train_stats"][0]["won_fraction"].as_py(),
                                  flat.model.train_stats_["won_fraction"])
    meta = pa.ipc.open_file(str(gen / "meta.arrow")).read_all()
    assert meta["storage"][0].as_py() == "flat" and meta["ntotal"][0].as_py() == flat.ntotal
    assert meta["search_order"][0].as_py() == "id"
    np.testing.assert_array_equal(meta["ids"][0].as_py(), flat.storage.ids())
    codes = faiss.read_index_binary(str(gen / "codes.faiss"))
    assert codes.ntotal == flat.ntotal and codes.code_size == flat.code_size
    manifest = json.loads((gen / "manifest.json").read_text())
    for name, entry in manifest["files"].items():
        data = (gen / name).read_bytes()
        assert entry == {"size": len(data), "xxh64": checksum(data, "xxh64")}


def test_a_generation_directory_loads_on_its_own(flat, xb, tmp_path):
    flat.save(tmp_path / "a")
    shutil.copytree(generation(tmp_path / "a"), tmp_path / "copy")
    assert_same(flat, read_index(tmp_path / "copy"), xb[:20])


def test_saving_again_replaces_and_leaves_one_generation(flat, ivf, xb, tmp_path):
    path = tmp_path / "a"
    flat.save(path)
    (path / "gen-0000000000000000").mkdir()  # leftover of an interrupted save
    ivf.save(path)
    assert_same(ivf, read_index(path), xb[:20])
    assert len([p for p in os.listdir(path) if p.startswith("gen-")]) == 1


def test_save_into_an_empty_directory(flat, tmp_path):
    flat.save(tmp_path)
    assert read_index(tmp_path).ntotal == flat.ntotal


def test_serialized_bytes_are_a_tar_of_a_loadable_generation(flat, xb, tmp_path):
    import tarfile
    import io
    with tarfile.open(fileobj=io.BytesIO(serialize_index(flat))) as tar:
        assert sorted(tar.getnames()) == sorted(FILES)
        tar.extractall(tmp_path / "x", filter="data")
    assert_same(flat, read_index(tmp_path / "x"), xb[:20])


def test_saved_file_is_the_tar_that_tarfile_writes_of_the_generation_files(flat, tmp_path):
    """write_index writes the tar in parts (no joined copy): its bytes are those of
    serialize_index, and those tarfile writes of the files of a directory save, in order."""
    import io
    import tarfile
    write_index(flat, tmp_path / "one.faiss")
    write_index(flat, tmp_path / "dir/")
    gen = next((tmp_path / "dir").glob("gen-*"))
    sink = io.BytesIO()
    with tarfile.open(fileobj=sink, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in ("model.arrow", "meta.arrow", "codes.faiss", "manifest.json"):
            data = (gen / name).read_bytes()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    saved = (tmp_path / "one.faiss").read_bytes()
    assert saved == sink.getvalue() == serialize_index(flat)


# ==================================================================== checks behind valid checksums
def rewrite(gen: Path, name: str, data: bytes) -> None:
    """Replace a file of a generation and fix its manifest entry (a consistent forgery)."""
    (gen / name).write_bytes(data)
    manifest = json.loads((gen / "manifest.json").read_text())
    manifest["files"][name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (gen / "manifest.json").write_text(json.dumps(manifest))


def arrow_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def with_column(path: Path, column: str, value) -> bytes:
    table = pa.ipc.open_file(str(path)).read_all()
    i = table.column_names.index(column)
    return arrow_bytes(table.set_column(i, table.field(i), pa.array([value], table.field(i).type)))


@pytest.mark.parametrize("text, message", [
    ("not json", "not valid JSON"),
    ("[" * 60000, "not valid JSON"),
    ("[" * 70000, "too large"),
    ('{"format": "other", "format_version": 1, "files": {}}', "format 'other'"),
    ('{"format": "biohash-index", "format_version": 1, "files": {}}', "exactly"),
    ('{"format": "biohash-index", "format_version": 1, "files": {"model.arrow": 1, '
     '"meta.arrow": 1, "codes.faiss": 1}}', "exactly"),
])
def test_malformed_manifests_are_refused(flat, tmp_path, text, message):
    flat.save(tmp_path / "a")
    (generation(tmp_path / "a") / "manifest.json").write_text(text)
    with pytest.raises(BioHashFormatError, match=f"manifest.json: .*{message}"):
        read_index(tmp_path / "a")


def test_newer_format_version_is_refused(flat, tmp_path):
    from biohash_index._formats.index import FORMAT_VERSION
    newer = FORMAT_VERSION + 1
    flat.save(tmp_path / "a")
    gen = generation(tmp_path / "a")
    manifest = json.loads((gen / "manifest.json").read_text())
    manifest["format_version"] = newer
    (gen / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BioHashFormatError, match=f"manifest.json.*format version {newer}"):
        read_index(tmp_path / "a")
    manifest["format_version"] = FORMAT_VERSION
    (gen / "manifest.json").write_text(json.dumps(manifest))
    rewrite(gen, "model.arrow", with_column(gen / "model.arrow", "format_version", newer))
    with pytest.raises(BioHashFormatError, match=f"model.arrow.*format version {newer}"):
        read_index(tmp_path / "a")


@pytest.mark.parametrize("file, column", [("meta.arrow", "ntotal"), ("model.arrow", "mean")])
def test_a_repeated_column_is_refused(flat, tmp_path, file, column):
    """Which of two columns of one name would be read is not the file's to leave open."""
    flat.save(tmp_path / "a")
    gen = generation(tmp_path / "a")
    table = pa.ipc.open_file(str(gen / file)).read_all()
    rewrite(gen, file, arrow_bytes(table.append_column(table.field(column),
                                                       table.column(column))))
    with pytest.raises(BioHashFormatError, match=f"{file}: repeated column names"):
        read_index(tmp_path / "a")


@pytest.mark.parametrize("file, column, value, message", [
    ("meta.arrow", "ntotal", 599, "ntotal=599"),
    ("meta.arrow", "next_id", 3, "next_id=3"),
    ("meta.arrow", "storage", "ivf", "router None for ivf storage"),
    ("meta.arrow", "storage", "bogus", "storage must be one of"),
    ("meta.arrow", "ids", list(range(1, 601)), "ids differ"),
    ("model.arrow", "hash_length", 64, "hash_length"),
    ("model.arrow", "n_hidden", 72, "weights"),
    ("model.arrow", "d", 31, "d=31"),
])
def test_inconsistent_files_are_refused(flat, tmp_path, file, column, value, message):
    flat.save(tmp_path / "a")
    gen = generation(tmp_path / "a")
    rewrite(gen, file, with_column(gen / file, column, value))
    with pytest.raises(BioHashFormatError, match=message) as err:
        read_index(tmp_path / "a")
    assert file in str(err.value) or "codes.faiss" in str(err.value)


def test_codes_of_another_code_size_are_refused(flat, xb, tmp_path):
    other = build(xb, n_hidden=80)
    flat.save(tmp_path / "a")
    other.save(tmp_path / "b")
    rewrite(generation(tmp_path / "a"), "codes.faiss",
            (generation(tmp_path / "b") / "codes.faiss").read_bytes())
    with pytest.raises(BioHashFormatError, match="codes.faiss.*16-byte codes.*8-byte"):
        read_index(tmp_path / "a")


def test_model_without_spread_as_earlier_revisions_wrote_it_loads_with_spread_0(flat, xb,
                                                                                  tmp_path):
    flat.save(tmp_path / "a")
    gen = generation(tmp_path / "a")
    table = pa.ipc.open_file(pa.BufferReader((gen / "model.arrow").read_bytes())).read_all()
    rewrite(gen, "model.arrow", arrow_bytes(table.drop_columns(["spread"])))
    loaded = read_index(tmp_path / "a")
    assert loaded.model.params == flat.model.params.replace(spread=0.0)
    for a, b in zip(loaded.search(xb[:20], 5), flat.search(xb[:20], 5)):
        np.testing.assert_array_equal(a, b)


def test_codes_in_an_idmap2_as_earlier_revisions_wrote_them_load(flat, xb, tmp_path):
    flat.save(tmp_path / "a")
    codes = faiss.IndexBinaryIDMap2(faiss.IndexBinaryFlat(flat.storage.index.d))
    codes.add_with_ids(flat.storage.codes(), flat.storage.ids())
    rewrite(generation(tmp_path / "a"), "codes.faiss",
            faiss.serialize_index_binary(codes).tobytes())
    loaded = read_index(tmp_path / "a")
    for a, b in zip(loaded.search(xb[:20], 5), flat.search(xb[:20], 5)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="already in the index"):
        loaded.add_with_ids(xb[:1], flat.storage.ids()[:1])


def test_repeated_ids_in_the_codes_are_refused(flat, tmp_path):
    flat.save(tmp_path / "a")
    codes = faiss.IndexBinaryIDMap2(faiss.IndexBinaryFlat(flat.storage.index.d))
    codes.add_with_ids(flat.storage.codes()[:3], np.array([0, 9, 9]))
    rewrite(generation(tmp_path / "a"), "codes.faiss",
            faiss.serialize_index_binary(codes).tobytes())
    with pytest.raises(BioHashFormatError, match=r"codes.faiss: ids must be distinct.*\[9\]"):
        read_index(tmp_path / "a")


# ==================================================================== crash safety
class Injected(Exception):
    pass


STEPS = [(index_dir, "write_new_file"), (index_dir, "fsync_dir"), (os, "mkdir"),
         (os, "rename"), (os, "replace")]


def save_failing_at(monkeypatch, index, path, n):
    """Save with the n-th write step (1-based) raising; returns (raised, committed)."""
    calls, state = [0], {"committed": False}

    def wrap(fn):
        def step(*args, **kw):
            calls[0] += 1
            if calls[0] == n:
                raise Injected(f"step {n}: {fn.__name__}")
            out = fn(*args, **kw)
            if fn.__name__ == "replace" and str(args[1]).endswith("CURRENT"):
                state["committed"] = True
            return out
        return step

    with monkeypatch.context() as m:
        for owner, name in STEPS:
            m.setattr(owner, name, wrap(getattr(owner, name)))
        try:
            index.save(path)
            raised = False
        except Injected:
            raised = True
    return raised, state["committed"], calls[0]


def test_an_exception_at_any_write_step_keeps_the_previous_index(flat, ivf, xb, tmp_path,
                                                                 monkeypatch):
    path = tmp_path / "a"
    flat.save(path)
    _, _, n_steps = save_failing_at(monkeypatch, flat, path, 0)
    assert n_steps >= 8
    for n in range(1, n_steps + 1):
        shutil.rmtree(path)
        flat.save(path)
        raised, committed, _ = save_failing_at(monkeypatch, ivf, path, n)
        assert raised
        assert_same(ivf if committed else flat, read_index(path), xb[:20])
        if not committed:  # nothing of the failed save is left behind
            assert sorted(os.listdir(path)) == ["BIOHASH_INDEX", "CURRENT", "LOCK", generation(path).name]


def test_an_exception_while_creating_leaves_nothing(flat, tmp_path, monkeypatch):
    path = tmp_path / "a"
    _, _, n_steps = save_failing_at(monkeypatch, flat, path, 0)
    shutil.rmtree(path)
    for n in range(1, n_steps + 1):
        raised, committed, _ = save_failing_at(monkeypatch, flat, path, n)
        assert raised
        if committed or path.exists():  # renamed into place, only the parent fsync failed
            assert read_index(path).ntotal == flat.ntotal
            shutil.rmtree(path)
        assert os.listdir(tmp_path) == []


def fsync_failing_at(monkeypatch, n):
    """Make the n-th os.fsync (1-based) raise ENOSPC, as a full disk does; returns the count."""
    import errno
    calls, fsync = [0], os.fsync

    def failing(fd):
        calls[0] += 1
        if calls[0] == n:
            raise OSError(errno.ENOSPC, "No space left on device")
        return fsync(fd)
    monkeypatch.setattr(os, "fsync", failing)
    return calls


@pytest.mark.parametrize("start", ["empty directory", "new path", "saved index"])
def test_a_save_that_fills_the_disk_removes_what_it_wrote(flat, ivf, xb, tmp_path, monkeypatch,
                                                          start):
    """Issue: a first save into an empty directory that hit a full disk left a 0-byte marker
    (and LOCK), and every later save refused the directory as not a saved index."""
    path = tmp_path / "a"
    with monkeypatch.context() as m:
        n_steps = fsync_failing_at(m, 0)
        flat.save(tmp_path / "count")
    for n in range(1, n_steps[0] + 1):
        shutil.rmtree(path, ignore_errors=True)
        if start == "empty directory":
            path.mkdir()
        elif start == "saved index":
            flat.save(path)
        before = sorted(os.listdir(path)) if path.exists() else None
        with monkeypatch.context() as m:
            fsync_failing_at(m, n)
            try:
                ivf.save(path)
                failed = False
            except OSError:
                failed = True
        if failed and before is not None and read_current(path) != "ivf":
            assert sorted(os.listdir(path)) in (before, sorted(before + ["LOCK"]))
        elif failed and before is None:
            assert not path.exists() or read_index(path).storage.kind == "ivf"
        ivf.save(path)   # a later save works
        assert_same(ivf, read_index(path), xb[:20])


def read_current(path):
    """The storage kind of the index saved at path, None if there is none."""
    try:
        return read_index(path).storage.kind
    except BioHashFormatError:
        return None


def test_failed_cleanup_is_finished_by_the_next_save(flat, ivf, tmp_path, monkeypatch):
    path = tmp_path / "a"
    flat.save(path)
    old = generation(path)
    with monkeypatch.context() as m:
        m.setattr(os, "rmdir", lambda *a, **k: (_ for _ in ()).throw(OSError("busy")))
        ivf.save(path)  # committed; removing the old generation failed silently
    assert old.exists() and read_index(path).storage.kind == "ivf"
    flat.save(path)
    assert not old.exists() and len(os.listdir(path)) == 4


def save_forever_in_child(indexes, target) -> tuple[int, int]:
    """Fork a child that saves the indexes to target in turn, forever, writing one byte to
    a pipe after each save; returns (pid, read end of the pipe)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            for i in range(10**9):
                indexes[i % 2].save(target)
                os.write(w, b".")
        finally:
            os._exit(1)
    os.close(w)
    return pid, r


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_sigkill_during_saves_keeps_a_complete_index(flat, ivf, xb, tmp_path):
    a, b = copy.deepcopy(flat), ivf
    a.add(np.tile(xb, (20, 1)))
    target = tmp_path / "target"
    a.save(target)
    expected = {fingerprint(a), fingerprint(b)}
    rng = random.Random(0)
    saves, interrupted = 0, 0
    for kill in range(40):   # at least 6 kills, and on until one lands mid-save (a busy
        if kill >= 6 and interrupted:   # machine can make the early ones miss)
            break
        pid, r = save_forever_in_child([a, b], target)
        time.sleep(rng.uniform(0.02, 0.3))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        with os.fdopen(r, "rb") as pipe:
            saves += len(pipe.read())
        interrupted += len(os.listdir(target)) > 4  # killed with a generation half written
        assert fingerprint(read_index(target)) in expected
    assert saves > 0 and interrupted > 0
    a.save(target)  # the next save removes what the killed ones left
    assert sorted(os.listdir(target)) == ["BIOHASH_INDEX", "CURRENT", "LOCK", generation(target).name]
    assert [p for p in os.listdir(tmp_path) if p.startswith(".target")] == []


# ==================================================================== corruption
def corruptions(gen: Path):
    """(file name, how, mutate(path)) for every file of a generation and of the root."""
    for name in (*FILES, "../CURRENT"):
        size = (gen / name).stat().st_size
        for how, fn in [
            ("missing", lambda p: p.unlink()),
            ("empty", lambda p: p.write_bytes(b"")),
            ("truncated-half", lambda p: p.write_bytes(p.read_bytes()[:len(p.read_bytes()) // 2])),
            ("truncated-1", lambda p: p.write_bytes(p.read_bytes()[:-1])),
            ("appended", lambda p: p.write_bytes(p.read_bytes() + b"\0")),
        ] + [(f"flip@{pos}", lambda p, pos=pos: flip(p, pos))
             for pos in sorted({0, 3, 8, size // 3, size // 2, size - 5, size - 1})]:
            yield name, how, fn


def flip(path: Path, pos: int) -> None:
    data = bytearray(path.read_bytes())
    data[pos] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("storage", ["flat", "ivf"])
def test_corrupted_files_raise_the_format_error_naming_the_file(storage, flat, ivf, tmp_path):
    index = flat if storage == "flat" else ivf
    index.save(tmp_path / "orig")
    cases = {}
    for i, (name, how, mutate) in enumerate(corruptions(generation(tmp_path / "orig"))):
        path = tmp_path / f"case{i}"
        shutil.copytree(tmp_path / "orig", path)
        mutate(generation(path) / name)
        cases[str(path)] = (Path(name).name, how)
    results = load_in_subprocess(cases)
    assert len(results) == len(cases)
    for path, (name, how) in cases.items():
        status, detail = results[path]
        if status == "ok":  # e.g. CURRENT without its final newline still names the generation
            assert detail == fingerprint(index), f"{name} {how}: loaded a different index"
        else:
            assert status == "format", f"{name} {how}: {status} {detail}"
            assert name in detail, f"{name} {how}: message does not name the file: {detail}"
    assert sum(status == "format" for status, _ in results.values()) >= len(cases) - 2


# ==================================================================== checksums
def test_damage_is_detected_by_the_xxh64_checksum(flat, tmp_path):
    flat.save(tmp_path / "a")
    codes = generation(tmp_path / "a") / "codes.faiss"
    data = bytearray(codes.read_bytes())
    data[len(data) // 2] ^= 1
    codes.write_bytes(bytes(data))
    with pytest.raises(BioHashFormatError, match="codes.faiss: xxh64 checksum mismatch"):
        read_index(tmp_path / "a")


def as_sha256_manifest(gen: Path) -> None:
    """Rewrite a generation's manifest as files saved before xxh64 list their checksums."""
    manifest = json.loads((gen / "manifest.json").read_text())
    manifest["files"] = {name: {"size": e["size"],
                                "sha256": hashlib.sha256((gen / name).read_bytes()).hexdigest()}
                         for name, e in manifest["files"].items()}
    (gen / "manifest.json").write_text(json.dumps(manifest))


def test_sha256_manifests_of_earlier_files_are_still_verified(flat, xb, tmp_path):
    flat.save(tmp_path / "a")
    gen = generation(tmp_path / "a")
    as_sha256_manifest(gen)
    assert_same(flat, read_index(tmp_path / "a"), xb[:20])
    data = bytearray((gen / "model.arrow").read_bytes())
    data[-100] ^= 1
    (gen / "model.arrow").write_bytes(bytes(data))
    with pytest.raises(BioHashFormatError, match="model.arrow: sha256 checksum mismatch"):
        read_index(tmp_path / "a")


def test_a_manifest_entry_without_a_checksum_is_refused(flat, tmp_path):
    flat.save(tmp_path / "a")
    gen = generation(tmp_path / "a")
    manifest = json.loads((gen / "manifest.json").read_text())
    del manifest["files"]["meta.arrow"]["xxh64"]
    (gen / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BioHashFormatError, match="must list size and a checksum"):
        read_index(tmp_path / "a")
