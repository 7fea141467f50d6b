"""The sharded index on a real Dask cluster: ``dask scheduler`` and two ``dask worker`` processes
started through the command line users run, on ports chosen at run time, and a ``Client``
connected to the scheduler's address. Build, search, add, remove, reopen; damaged, missing and
foreign shards; workers killed (by pid) between and during searches, and a stalled worker."""
import copy
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

import dask.array as da  # noqa: E402
import dask.dataframe as dd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from biohash_index import BioHashIndex  # noqa: E402
from biohash_index import dask as bhd  # noqa: E402
from biohash_index import BioHashFormatError  # noqa: E402
from biohash_index._formats import shards as sm  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword")  # dask vs pandas 3

START_TIMEOUT = 90  # seconds for the scheduler and workers to come up on a busy machine


class Cluster:
    """A scheduler and two nanny-managed workers, each its own process group."""

    def __init__(self, folder: Path):
        self.folder, self.procs = folder, []
        self.env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                    "MKL_NUM_THREADS": "1"}
        self.log = open(folder / "cluster.log", "ab")

    def start(self, *args: str) -> None:
        self.procs.append(subprocess.Popen(
            [sys.executable, "-m", "dask", *args], cwd=self.folder, env=self.env,
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True))

    def stop(self) -> None:
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self.log.close()


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """A ``Client`` of a cluster started as ``dask scheduler`` + 2 x ``dask worker``."""
    folder = tmp_path_factory.mktemp("cluster")
    cluster = Cluster(folder)
    client = None
    try:
        scheduler_file = folder / "scheduler.json"
        cluster.start("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                      "--scheduler-file", str(scheduler_file), "--idle-timeout", "900s")
        deadline = time.monotonic() + START_TIMEOUT
        while not scheduler_file.exists():
            assert time.monotonic() < deadline, (folder / "cluster.log").read_text()
            time.sleep(0.2)
        time.sleep(0.2)  # the file is written in one go, but let it be complete
        address = json.loads(scheduler_file.read_text())["address"]
        for i in range(2):
            cluster.start("worker", address, "--nthreads", "1", "--host", "127.0.0.1",
                          "--no-dashboard", "--death-timeout", "60", "--name", f"w{i}",
                          "--local-directory", str(folder / f"w{i}"))
        client = distributed.Client(address, timeout=START_TIMEOUT)
        client.wait_for_workers(2, timeout=START_TIMEOUT)
        yield client
    finally:
        if client is not None:
            client.close()
        cluster.stop()


@pytest.fixture(autouse=True)
def two_workers(client):
    """Every test starts with two workers (a killed one is restarted by its nanny)."""
    client.wait_for_workers(2, timeout=START_TIMEOUT)


def make_index(storage: str, xb: np.ndarray, seed: int = 0, assign: int = 1,
               length_byte: bool = False) -> BioHashIndex:
    """The default scoring (asymmetric): shards re-rank by weighted distance (with
    length_byte, by the estimated distance); IVF storage routes with the template's router."""
    index = BioHashIndex(32, 4, n_hidden=64, epochs=3, seed=seed, storage=storage, nlist=4,
                         nprobe=2, assign=assign, length_byte=length_byte)
    index.train(xb)
    return index


@pytest.fixture(scope="module")
def data(clustered):
    """xb (600, 32) and queries near some of them (many ties at k = 4 of m = 64)."""
    xb = clustered[0]
    rng = np.random.default_rng(1)
    return xb, xb[:40] + 0.1 * rng.standard_normal((40, 32)).astype(np.float32)


def frame_of(folder: Path, x: np.ndarray, ids, npartitions: int):
    """A dask dataframe read from Parquet: column "v" of d-vectors, "id" of int64 ids."""
    folder.mkdir()
    table = pa.table({"id": np.asarray(ids, np.int64), "v": pa.FixedSizeListArray.from_arrays(
        pa.array(x.ravel()), x.shape[1])})
    step = -(-len(x) // npartitions)
    for f in range(npartitions):
        pq.write_table(table.slice(f * step, step), folder / f"part-{f}.parquet")
    return dd.read_parquet(folder)


def assert_same_answers(sharded, single, xq, ks=(1, 10, 5000), radius=5):
    """The sharded index answers exactly as the single index holding the same vectors."""
    for k in ks:
        D, I = sharded.search(xq, k)
        Dref, Iref = single.search(xq, k)
        np.testing.assert_array_equal(I, Iref)
        np.testing.assert_array_equal(D, Dref)
    for got, want in zip(sharded.range_search(xq, radius), single.range_search(xq, radius)):
        np.testing.assert_array_equal(got, want)


def manifest_file(root: Path) -> Path:
    """The current manifest file of a sharded index (the highest version)."""
    return root / sm.version_file(sm.read_manifest(root)["version"])


def assert_files_are_the_listed_ones(root: Path) -> dict:
    """Every file the current manifest lists is there with its checksum, and nothing else
    (no orphaned shard, no older manifest); returns the manifest."""
    manifest = json.loads(manifest_file(root).read_text())
    listed = {e["file"]: e for e in [manifest["template"], *manifest["shards"]]}
    assert set(os.listdir(root)) == {manifest_file(root).name, *listed}
    for name, e in listed.items():
        assert hashlib.sha256((root / name).read_bytes()).hexdigest() == e["sha256"]
    return manifest


def worker_pids(client) -> dict:
    return client.run(os.getpid)


def holder_pid(client, sharded, shard: int = 0) -> int:
    """The pid of a worker holding shard ``shard`` of ``sharded``."""
    [addr, *_] = client.who_has([sharded.shards_[shard]])[sharded.shards_[shard].key]
    return worker_pids(client)[addr]


# ---------------------------------------------------------------------- answers as one index
@pytest.mark.parametrize("storage, assign, length_byte", [
    ("flat", 1, False), ("ivf", 1, False), ("ivf", 2, False), ("inverted", 1, False),
    ("flat", 1, True), ("ivf", 2, True)])
def test_sharded_search_equals_one_index_every_time(client, data, tmp_path, storage, assign,
                                                    length_byte):
    xb, xq = data
    template = make_index(storage, xb, assign=assign, length_byte=length_byte)
    sharded = bhd.build_shards(template, da.from_array(xb, chunks=(170, 32)), tmp_path / "s",
                               client)
    assert sharded.nshards == 4 and sharded.ntotal_per_shard == [170, 170, 170, 90]
    single = copy.deepcopy(template)
    single.add(xb)
    for _ in range(3):  # the same query batch again and again (issue: lost dependencies)
        assert_same_answers(sharded, single, xq)
    D, I = sharded.search(xq, 10)
    np.testing.assert_array_equal(D, single.search(xq, 10)[0])  # faiss's own distances
    sharded.close()


def test_empty_sharded_index_answers_like_an_empty_index(client, data, tmp_path):
    xb, xq = data
    template = make_index("flat", xb)
    sharded = bhd.ShardedIndex.create(template, tmp_path / "s", client)
    assert sharded.ntotal == 0
    assert_same_answers(sharded, template, xq, ks=(3,))


# ---------------------------------------------------------------------- changing it
def sharded_and_single(client, xb, root):
    """(template, a sharded index of xb[:300] in three shards at root, one index of it)."""
    template = make_index("flat", xb)
    sharded = bhd.build_shards(template, da.from_array(xb[:300], chunks=100), root, client)
    single = copy.deepcopy(template)
    single.add(xb[:300])
    return template, sharded, single


def test_build_add_remove_and_reopen(client, data, tmp_path):
    xb, xq = data
    root = tmp_path / "s"
    template, sharded, single = sharded_and_single(client, xb, root)

    sharded.add(xb[300:350])  # ids 300..349
    single.add(xb[300:350])
    ids = np.arange(350, 450, dtype=np.int64) * 7 + 10_000
    sharded.add_with_ids(xb[350:450], ids)
    single.add_with_ids(xb[350:450], ids)
    frame = frame_of(tmp_path / "f1", xb[450:600], np.arange(450, 600) * 3 + 50_000, 3)
    assert sharded.add_from(frame, column="v", ids_column="id") == 150
    single.add_with_ids(xb[450:600], np.arange(450, 600) * 3 + 50_000)
    assert sharded.nshards == 3 + 1 + 1 + 3 and sharded.ntotal == single.ntotal == 600
    assert_same_answers(sharded, single, xq)

    # shard 0 (ids 0..99) emptied, shard 1, the add() shard and two others changed
    gone = np.r_[0:120, 345:355, ids[:5], 50_000 + 3 * 599, 123_456_789]
    assert sharded.remove_ids(gone) == single.remove_ids(gone) == 120 + 5 + 5 + 1
    assert sharded.ntotal == single.ntotal == 469 and sharded.nshards == 7
    assert_same_answers(sharded, single, xq)

    # ids stay unique over all shards: clashes are refused and change nothing
    files = sorted(os.listdir(root))
    version = sharded.manifest["version"]
    with pytest.raises(ValueError, match=r"already stored.*\[200\]"):
        sharded.add_with_ids(xb[:2], [200, 100])  # 100 was removed, 200 is in shard 2
    with pytest.raises(ValueError, match="distinct"):
        sharded.add_with_ids(xb[:2], [7, 7])
    clash = frame_of(tmp_path / "f2", xb[:4], [1, 2, 900_000, 1], 2)
    with pytest.raises(ValueError, match=r"stored \(or repeated in the added data\): \[1\]"):
        sharded.add_from(clash, column="v", ids_column="id")  # 1 twice, in two partitions
    assert sorted(os.listdir(root)) == files and sharded.manifest["version"] == version
    assert sharded.ntotal == 469
    sharded.add(xb[:3])  # numbered from one past the largest id ever added
    single.add(xb[:3])
    assert sharded.manifest["shards"][-1]["min_id"] == 50_000 + 3 * 599 + 1  # as single's

    # every change is on disk: reopened, the same index
    sharded.close()
    reopened = bhd.ShardedIndex.open(root, client)
    assert reopened.ntotal == 472 and reopened.manifest == sharded.manifest
    assert_same_answers(reopened, single, xq)
    manifest = assert_files_are_the_listed_ones(root)  # replaced files were removed
    assert manifest["model_digest"] == sm.model_digest(template._state())


# ---------------------------------------------------------------------- changes and faults
# Code run on every worker (``client.run(exec, code, {})``): after the file system call that
# publishes a manifest (os.replace or os.link to "shards*.json"), the first worker to get
# there creates MARKER and dies by SIGKILL, before it can report that its task finished.
KILL_AFTER_COMMIT = """
import os, signal
def dying_after(fn):
    def call(src, dst, *args, **kwargs):
        out = fn(src, dst, *args, **kwargs)
        name = os.path.basename(str(dst))
        if name.startswith("shards") and name.endswith(".json"):
            try:
                os.close(os.open(MARKER, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                return out
            os.kill(os.getpid(), signal.SIGKILL)
        return out
    call.original = fn
    return call
os.replace, os.link = dying_after(os.replace), dying_after(os.link)
"""
# Code run on every worker: a manifest is published only once two commits got there (or
# after 5 s), so that two changes made on one version race for the commit.
MEET_BEFORE_COMMIT = """
import os, time
def meeting_before(fn):
    def call(src, dst, *args, **kwargs):
        name = os.path.basename(str(dst))
        if name.startswith("shards") and name.endswith(".json"):
            os.close(os.open(os.path.join(FOLDER, f"arrived-{os.getpid()}"), os.O_CREAT))
            deadline = time.monotonic() + 5
            while len(os.listdir(FOLDER)) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
        return fn(src, dst, *args, **kwargs)
    call.original = fn
    return call
os.replace, os.link = meeting_before(os.replace), meeting_before(os.link)
"""
RESTORE_OS = """
import os
os.replace = getattr(os.replace, "original", os.replace)
os.link = getattr(os.link, "original", os.link)
"""


def run_on_workers(client, code: str, **names) -> None:
    for name, value in names.items():
        code = code.replace(name, repr(str(value)))
    client.run(exec, code, {})


@pytest.mark.parametrize("change", ["add", "remove_ids"])
def test_a_change_whose_worker_dies_right_after_the_commit_is_kept(client, data, tmp_path,
                                                                    change):
    """Issue: Dask ran the commit again on another worker, which took its own manifest for
    another writer's, and the client then deleted the shard the manifest lists. A commit
    that finds its own change committed succeeds; cleanup never deletes a listed file."""
    xb, xq = data
    root = tmp_path / "s"
    _, sharded, single = sharded_and_single(client, xb, root)
    marker = tmp_path / "killed"
    run_on_workers(client, KILL_AFTER_COMMIT, MARKER=marker)
    try:
        if change == "add":
            sharded.add(xb[300:400])
            single.add(xb[300:400])
        else:
            assert sharded.remove_ids(np.arange(50, 150)) == single.remove_ids(
                np.arange(50, 150)) == 100
    finally:
        client.wait_for_workers(2, timeout=START_TIMEOUT)
        run_on_workers(client, RESTORE_OS)
    assert marker.exists()  # a worker died right after committing
    assert sharded.ntotal == single.ntotal
    assert_same_answers(sharded, single, xq, ks=(10,))
    sharded.close()
    reopened = bhd.ShardedIndex.open(root, client)
    assert reopened.manifest == sharded.manifest
    assert_same_answers(reopened, single, xq, ks=(10,))
    assert_files_are_the_listed_ones(root)
    reopened.close()


def test_threads_sharing_one_sharded_index_lose_no_change(client, data, tmp_path):
    """Issue: three threads adding through one object: 15 adds returned, 14 were kept."""
    xb, xq = data
    template = make_index("flat", xb)
    root = tmp_path / "s"
    sharded = bhd.ShardedIndex.create(template, root, client)
    errors = []

    def adds(t):
        try:
            for i in range(5):
                rows = slice(40 * (5 * t + i), 40 * (5 * t + i + 1))
                sharded.add_with_ids(xb[rows], np.arange(600)[rows])
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=adds, args=(t,)) for t in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert errors == [] and sharded.nshards == 15
    single = copy.deepcopy(template)
    single.add(xb)
    sharded.close()
    reopened = bhd.ShardedIndex.open(root, client)
    assert reopened.nshards == 15 and reopened.ntotal == 600
    assert_same_answers(reopened, single, xq, ks=(10,))
    assert_files_are_the_listed_ones(root)
    reopened.close()


def test_two_writers_racing_for_one_version_never_lose_a_change(client, data, tmp_path):
    """Issue: two objects on one directory adding at once both returned, and one shard was
    orphaned. Each commit waits for the other at the manifest: one commits, the other
    raises and changes nothing; every add that returned is in the reopened index."""
    xb, _ = data
    root = tmp_path / "s"
    bhd.ShardedIndex.create(make_index("flat", xb), root, client).close()
    writers = [bhd.ShardedIndex.open(root, client) for _ in range(2)]
    meeting = tmp_path / "meeting"
    meeting.mkdir()
    run_on_workers(client, MEET_BEFORE_COMMIT, FOLDER=meeting)
    outcome = {}

    def add(w):
        try:
            writers[w].add_with_ids(xb[100 * w:100 * w + 100], np.arange(100) + 100 * w)
            outcome[w] = "ok"
        except Exception as e:  # noqa: BLE001 - checked below
            outcome[w] = f"{type(e).__name__}: {e}"

    try:
        threads = [threading.Thread(target=add, args=(w,)) for w in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
    finally:
        run_on_workers(client, RESTORE_OS)
    won = [w for w in range(2) if outcome[w] == "ok"]
    assert len(won) == 1, outcome
    lost = 1 - won[0]
    assert outcome[lost].startswith("RuntimeError") and "changed by another writer" in \
        outcome[lost] and "nothing was changed" in outcome[lost]
    reopened = bhd.ShardedIndex.open(root, client)
    assert reopened.ntotal == 100
    assert reopened.search(xb[100 * won[0]:100 * won[0] + 1], 1)[1][0, 0] == 100 * won[0]
    assert_files_are_the_listed_ones(root)
    with pytest.raises(RuntimeError, match="changed by another writer"):
        writers[lost].add(xb[:5])   # still on the old version: refused, nothing changed
    assert sm.read_manifest(root) == reopened.manifest
    for index in (*writers, reopened):
        index.close()


# ---------------------------------------------------------------------- damaged directories
def test_open_names_the_missing_damaged_or_foreign_shard(client, data, tmp_path):
    xb, _ = data
    x = da.from_array(xb, chunks=200)
    a = bhd.build_shards(make_index("flat", xb), x, tmp_path / "a", client)
    b = bhd.build_shards(make_index("flat", xb, seed=5), x, tmp_path / "b", client)
    a.close()
    b.close()
    shard1 = a.manifest["shards"][1]["file"]

    def broken(name, change):
        root = tmp_path / name
        shutil.copytree(tmp_path / "a", root)
        change(root)
        return root

    def mixed(root):  # a shard of b listed in a's manifest, with its own (valid) checksum
        shutil.copy(tmp_path / "b" / b.manifest["shards"][0]["file"], root)
        manifest = json.loads(manifest_file(root).read_text())
        manifest["shards"][1] = b.manifest["shards"][0]
        manifest_file(root).write_text(json.dumps(manifest))

    def flip(root):
        data = bytearray((root / shard1).read_bytes())
        data[len(data) // 2] ^= 1
        (root / shard1).write_bytes(bytes(data))

    cases = {"missing": (lambda root: (root / shard1).unlink(), f"{shard1}: missing"),
             "damaged": (flip, f"{shard1}: sha256 checksum differs"),
             "truncated": (lambda root: os.truncate(root / shard1, 100), f"{shard1}: 100 bytes"),
             "mixed": (mixed, f"{b.manifest['shards'][0]['file']}: built with another model"),
             "no manifest": (lambda root: manifest_file(root).unlink(), "no manifest")}
    for name, (change, message) in cases.items():
        with pytest.raises(BioHashFormatError, match=message):
            bhd.ShardedIndex.open(broken(name, change), client)
    with pytest.raises(ValueError, match="not empty"):
        bhd.ShardedIndex.create(make_index("flat", xb), tmp_path / "a", client)


# ---------------------------------------------------------------------- faults
@pytest.fixture()
def pair(client, data, tmp_path):
    """A sharded index of all of xb (6 shards over both workers), its answers to xq."""
    xb, xq = data
    sharded = bhd.build_shards(make_index("flat", xb), da.from_array(xb, chunks=100),
                               tmp_path / "s", client)
    assert len(client.who_has(sharded.shards_)) == 6
    assert len({a for addrs in client.who_has(sharded.shards_).values() for a in addrs}) == 2
    yield sharded, sharded.search(xq, 20)
    sharded.close()


def test_worker_killed_between_searches(client, data, pair):
    sharded, (D, I) = pair
    os.kill(holder_pid(client, sharded), signal.SIGKILL)
    for _ in range(2):  # shards reloaded from their files, on the other worker
        D2, I2 = sharded.search(data[1], 20)
        np.testing.assert_array_equal(I2, I)
        np.testing.assert_array_equal(D2, D)


def search_in_thread(sharded, xq, k):
    out = {}

    def run():
        try:
            out["result"] = sharded.search(xq, k)
        except BaseException as e:  # noqa: BLE001 - handed to the test
            out["error"] = e
    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def test_search_that_loses_a_shard_retries_it(client, data, pair):
    sharded, (D, I) = pair
    pid = holder_pid(client, sharded, 3)
    os.kill(pid, signal.SIGSTOP)  # the search cannot finish while this worker is stopped
    try:
        thread, out = search_in_thread(sharded, data[1], 20)
        thread.join(2)
        assert thread.is_alive()  # waiting for the stopped worker's shards
    finally:
        os.kill(pid, signal.SIGKILL)
    thread.join(60)
    assert "error" not in out, out.get("error")
    np.testing.assert_array_equal(out["result"][1], I)
    np.testing.assert_array_equal(out["result"][0], D)


def test_search_that_loses_a_shard_it_cannot_reload_fails(client, data, pair, tmp_path):
    sharded, _ = pair
    pid = holder_pid(client, sharded, 3)
    os.kill(pid, signal.SIGSTOP)
    try:
        thread, out = search_in_thread(sharded, data[1], 20)
        thread.join(2)
        assert thread.is_alive()
        for e in sharded.manifest["shards"]:  # the files change under the running search
            (tmp_path / "s" / e["file"]).write_bytes(b"damaged")
    finally:
        os.kill(pid, signal.SIGKILL)
    thread.join(60)
    assert "result" not in out  # never an answer without the lost shards
    assert isinstance(out["error"], BioHashFormatError)
    assert "shard-" in str(out["error"]) and "bytes, the manifest says" in str(out["error"])


def test_stalled_worker_is_a_timeout_not_a_hang(client, data, pair):
    sharded, (D, I) = pair
    sharded.timeout = 3.0
    pid = holder_pid(client, sharded, 2)
    os.kill(pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        with pytest.raises(TimeoutError, match=r"timeout=3.0 s; shards not searched yet: .*shard-"):
            sharded.search(data[1], 20)
        assert time.monotonic() - t0 < 10
    finally:
        os.kill(pid, signal.SIGCONT)
    sharded.timeout = 60.0
    np.testing.assert_array_equal(sharded.search(data[1], 20)[1], I)


def test_shards_rebuilt_with_another_model_are_refused_after_a_restart(client, data, pair,
                                                                       tmp_path):
    """Issue: shards reloaded from files rebuilt in place were searched with the old model's
    query codes. Every (re)load checks the file and the model digest against the manifest."""
    sharded, _ = pair
    xb, xq = data
    other = bhd.build_shards(make_index("flat", xb, seed=7), da.from_array(xb, chunks=100),
                             tmp_path / "other", client)
    other.close()
    for mine, theirs in zip(sharded.manifest["shards"], other.manifest["shards"]):
        shutil.copy(tmp_path / "other" / theirs["file"], tmp_path / "s" / mine["file"])
    os.kill(holder_pid(client, sharded), signal.SIGKILL)
    with pytest.raises(BioHashFormatError, match=r"shard-.*sha256 checksum differs"):
        sharded.search(xq, 20)
    # a manifest that vouches for the foreign files: caught by the model digest
    manifest = json.loads(manifest_file(tmp_path / "s").read_text())
    manifest["shards"] = [{**mine, "sha256": theirs["sha256"], "size": theirs["size"]}
                          for mine, theirs in zip(manifest["shards"], other.manifest["shards"])]
    manifest_file(tmp_path / "s").write_text(json.dumps(manifest))
    with pytest.raises(BioHashFormatError, match="shard-.*built with another model"):
        bhd.ShardedIndex.open(tmp_path / "s", client)


# ---------------------------------------------------------------------- misuse
def test_closed_index_and_huge_k_are_clear_errors(client, data, pair):
    sharded, _ = pair
    xq = data[1]
    with pytest.raises(ValueError, match=r"k=1099511627776 is too large"):
        sharded.search(xq, 2**40)  # refused on the client, before any task
    with pytest.raises(TypeError, match="k must be an integer"):
        sharded.search(xq, 2.0)
    with pytest.raises(ValueError, match="radius must be >= 0"):
        sharded.range_search(xq, -1)
    sharded.close()
    for call in (lambda: sharded.search(xq, 5), lambda: sharded.range_search(xq, 3),
                 lambda: sharded.add(xq), lambda: sharded.remove_ids([1])):
        with pytest.raises(RuntimeError, match="closed ShardedIndex: reopen it"):
            call()
