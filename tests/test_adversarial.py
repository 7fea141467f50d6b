"""Adversarial tests: each tries to break a promise of README.md or docs/format.md.

Foreign and hostile directories (links out of the index, FIFOs, devices, huge or forged
files), state left by one call for the next (IVF clusters, thread settings), extreme but
valid input (scale, seeds, batch sizes, Arrow integer lists), and the rule that a call
that raises leaves the index as it was.
"""
import copy
import os
import pickle
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numba
import numpy as np
import pyarrow as pa
import pytest
from threadpoolctl import threadpool_info

from biohash_index import (BioHashFormatError, BioHashIndex, deserialize_index, read_index,
                           serialize_index)
from biohash_index._model import BioHashModel, BioHashParams
from biohash_index._threads import thread_limit

from .test_persistence import (REPO, assert_same, build, fingerprint, generation,
                               load_in_subprocess, rewrite, with_column)
from .test_persistence import flat, ivf, xb  # noqa: F401  (the same module-scoped fixtures)

posix = pytest.mark.skipif(os.name != "posix", reason="POSIX file types and flock")
CHILD_MEMORY = 4 << 30  # bytes of address space for a loading child (importing takes ~2 GiB)


def tree(path: Path) -> dict:
    """Every entry under path: file bytes, link targets, directories (to check nothing moved)."""
    out = {}
    for p in sorted(path.rglob("*")):
        rel = str(p.relative_to(path))
        out[rel] = (os.readlink(p) if p.is_symlink() else p.read_bytes() if p.is_file()
                    else "dir")
    return out


# ==================================================================== whose directory (item 1)
def leveldb_like(path: Path) -> Path:
    path.mkdir()
    (path / "CURRENT").write_text("MANIFEST-000002\n")
    (path / "LOCK").write_bytes(b"")
    (path / "MANIFEST-000002").write_bytes(b"\x00leveldb manifest")
    (path / "000003.log").write_bytes(b"precious records")
    (path / "gen-notes").mkdir()
    (path / "gen-notes" / "a.txt").write_text("keep")
    return path


def test_a_foreign_directory_with_a_current_file_is_refused_and_untouched(flat, tmp_path):
    db = leveldb_like(tmp_path / "db")
    before = tree(db)
    with pytest.raises(ValueError, match="does not hold a saved index"):
        flat.save(db)
    assert tree(db) == before


def test_a_current_file_naming_a_generation_is_not_enough(flat, tmp_path):
    """CURRENT names gen-<hex>, but that directory holds no manifest of this format."""
    db = tmp_path / "db"
    db.mkdir()
    (db / "CURRENT").write_text("gen-0123456789abcdef\n")
    (db / "gen-0123456789abcdef").mkdir()
    (db / "gen-0123456789abcdef" / "manifest.json").write_text('{"format": "other"}')
    (db / "data.bin").write_bytes(b"precious")
    before = tree(db)
    with pytest.raises(ValueError, match="does not hold a saved index"):
        flat.save(db)
    assert tree(db) == before


def test_an_index_saved_before_the_marker_existed_loads_and_is_replaced(flat, ivf, xb,
                                                                        tmp_path):
    path = tmp_path / "old"
    flat.save(path)
    (path / "BIOHASH_INDEX").unlink()  # the layout of indexes saved by earlier revisions
    old = generation(path)
    assert_same(flat, read_index(path), xb[:20])
    ivf.save(path)
    assert_same(ivf, read_index(path), xb[:20])
    assert not old.exists()
    assert sorted(os.listdir(path)) == ["BIOHASH_INDEX", "CURRENT", "LOCK",
                                        generation(path).name]


def test_a_save_deletes_only_what_saves_write(flat, ivf, tmp_path):
    """Entries the library did not write stay, even where a save cleans up: a user's file,
    a gen-* directory with a foreign file in it, a gen-* link; stray generations and
    temporary CURRENT files of interrupted saves go."""
    path = tmp_path / "idx"
    flat.save(path)
    old = generation(path)
    (path / "notes.txt").write_text("mine")
    (old / "extra.txt").write_text("mine too")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "model.arrow").write_bytes(b"not the library's")
    (path / "gen-00000000000000aa").symlink_to(outside)
    stray = path / "gen-00000000000000bb"
    stray.mkdir()
    (stray / "codes.faiss").write_bytes(b"half written")
    (path / ".CURRENT.tmp-gen-00000000000000bb").write_text("gen-00000000000000bb\n")
    ivf.save(path)
    assert read_index(path).storage.kind == "ivf"
    assert (path / "notes.txt").read_text() == "mine"
    assert sorted(os.listdir(old)) == ["extra.txt"]       # its index files removed, not it
    assert (outside / "model.arrow").read_bytes() == b"not the library's"
    assert (path / "gen-00000000000000aa").is_symlink()
    assert not stray.exists() and not (path / ".CURRENT.tmp-gen-00000000000000bb").exists()


def test_a_wrong_marker_is_refused(flat, tmp_path):
    path = tmp_path / "idx"
    flat.save(path)
    (path / "BIOHASH_INDEX").write_text("something else\n")
    before = tree(path)
    with pytest.raises(ValueError, match="does not hold a saved index"):
        flat.save(path)
    assert tree(path) == before


def test_a_directory_holding_only_an_empty_lock_is_empty(flat, tmp_path):
    """What a first save into an empty directory leaves when it is killed at once."""
    (tmp_path / "LOCK").write_bytes(b"")
    flat.save(tmp_path)
    assert read_index(tmp_path).ntotal == flat.ntotal


# ==================================================================== hostile directories (8)
def hostile(path: Path, gen: Path, how: str, name: str, outside: Path) -> None:
    """Damage the saved index at ``path`` (generation ``gen``) in one way."""
    target = path / name if name == "CURRENT" else gen / name
    if how == "fifo":
        target.unlink()
        os.mkfifo(target)
    elif how == "link-out":  # a link to a valid copy of the file, outside the index
        copy = outside / f"{path.name}-{name}"
        copy.write_bytes(target.read_bytes())
        target.unlink()
        target.symlink_to(copy)
    elif how == "dev-zero":
        target.unlink()
        target.symlink_to("/dev/zero")
    elif how == "sparse-8GiB":
        os.truncate(target, 8 << 30)


@posix
def test_hostile_files_end_in_a_format_error(flat, tmp_path):
    """FIFOs (which would block a reader forever), links (out of the directory, to
    /dev/zero) and an 8 GiB sparse codes.faiss: each load ends in BioHashFormatError, in a
    child with a bounded address space (a hang or a runaway read fails the test)."""
    flat.save(tmp_path / "orig")
    outside = tmp_path / "outside"
    outside.mkdir()
    names = ("CURRENT", "manifest.json", "model.arrow", "meta.arrow", "codes.faiss")
    cases = [(how, name) for how in ("fifo", "link-out", "dev-zero") for name in names]
    paths = {}
    for i, (how, name) in enumerate(cases + [("sparse-8GiB", "codes.faiss")]):
        path = tmp_path / f"case{i}"
        shutil.copytree(tmp_path / "orig", path)
        hostile(path, generation(path), how, name, outside)
        paths[str(path)] = (how, name)
    path = tmp_path / "gen-link"  # the generation directory a link to a copy outside
    shutil.copytree(tmp_path / "orig", path)
    gen = generation(path)
    os.rename(gen, outside / gen.name)
    gen.symlink_to(outside / gen.name)
    paths[str(path)] = ("link-out", gen.name)
    results = load_in_subprocess(paths, timeout=60, memory=CHILD_MEMORY)
    for path, (how, name) in paths.items():
        status, detail = results[path]
        assert status == "format", f"{how} {name}: {status} {detail}"
        assert name in detail, f"{how} {name}: {detail}"


@pytest.mark.parametrize("nlist", [2**24, 2**31])
def test_a_forged_nlist_is_refused_before_anything_is_allocated(ivf, tmp_path, nlist):
    """meta.arrow declaring a huge nlist behind a recomputed checksum: refused by comparison
    with codes.faiss, without building the lists (2.8 GiB at 2**24, bad_alloc at 2**31),
    in a child whose address space would not hold them."""
    path = tmp_path / "idx"
    ivf.save(path)
    gen = generation(path)
    rewrite(gen, "meta.arrow", with_column(gen / "meta.arrow", "nlist", nlist))
    status, detail = load_in_subprocess([path], timeout=60, memory=CHILD_MEMORY)[str(path)]
    assert status == "format" and "nlist" in detail, detail


@posix
@pytest.mark.parametrize("kind", ["link", "fifo"])
def test_a_hostile_lock_file_fails_the_save_and_touches_nothing(flat, ivf, xb, tmp_path, kind):
    path = tmp_path / "idx"
    flat.save(path)
    victim = tmp_path / "victim"
    (path / "LOCK").unlink()
    if kind == "link":
        (path / "LOCK").symlink_to(victim)
    else:
        os.mkfifo(path / "LOCK")
    with pytest.raises(BioHashFormatError, match="LOCK"):
        ivf.save(path)
    assert not victim.exists()
    assert_same(flat, read_index(path), xb[:20])


def test_current_cannot_name_a_path_outside(flat, tmp_path):
    path = tmp_path / "idx"
    flat.save(path)
    gen = generation(path)
    for text in (f"../idx/{gen.name}", "/etc", f"{gen.name}/..", "gen-../../x"):
        (path / "CURRENT").write_text(text + "\n")
        with pytest.raises(BioHashFormatError, match="does not name a generation"):
            read_index(path)


def test_deserialize_ignores_links_and_refuses_what_is_missing(flat):
    """A tar member that is a link is not a file of the index: it is missing."""
    import io
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(serialize_index(flat))) as src, \
            tarfile.open(fileobj=buf, mode="w") as out:
        for member in src.getmembers():
            if member.name == "codes.faiss":  # replaced by a link to a file of the system
                link = tarfile.TarInfo("codes.faiss")
                link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
                out.addfile(link)
            else:
                out.addfile(member, src.extractfile(member))
    with pytest.raises(BioHashFormatError, match="codes.faiss: missing"):
        deserialize_index(buf.getvalue())


# ==================================================================== n_threads on load (6)
@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 numba threads")
def test_an_index_saved_with_more_threads_loads_where_numba_has_fewer(xb, tmp_path):
    index = build(xb, n_threads=2)
    index.save(tmp_path / "idx")
    (tmp_path / "idx.pkl").write_bytes(pickle.dumps(index))
    expected = index.search(xb[:5], 3)[1].tolist()
    code = (
        "import pickle, sys, numpy as np\n"
        "from biohash_index import read_index\n"
        "a = read_index(sys.argv[1])\n"
        "b = pickle.loads(open(sys.argv[2], 'rb').read())\n"
        "xq = np.load(sys.argv[3])\n"
        "print(a.n_threads, b.n_threads, a.search(xq, 3)[1].tolist() == b.search(xq, 3)[1].tolist()"
        " == eval(sys.argv[4]))\n")
    np.save(tmp_path / "xq.npy", xb[:5])
    env = {**os.environ, "NUMBA_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "idx"),
                           str(tmp_path / "idx.pkl"), str(tmp_path / "xq.npy"), repr(expected)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["1", "1", "True"]


# ==================================================================== seeds and other ints (7)
@pytest.mark.parametrize("name", ["seed", "batch_size", "epochs"])
def test_integers_beyond_int64_are_refused_at_construction(name):
    with pytest.raises(ValueError, match=f"{name} must be <= {2**63 - 1}"):
        BioHashIndex(32, 4, n_hidden=64, **{name: 2**63})


def test_the_largest_seed_trains_saves_pickles_and_copies(xb, tmp_path):
    index = build(xb, n_add=50, seed=2**63 - 1)
    index.save(tmp_path / "idx")
    for clone in (read_index(tmp_path / "idx"), pickle.loads(pickle.dumps(index)),
                  copy.deepcopy(index)):
        assert_same(index, clone, xb[:20])


# ==================================================================== IVF retraining (3)
@pytest.mark.parametrize("how", ["train", "train_from"])
def test_ivf_trained_again_equals_a_fresh_index(xb, how):
    rng = np.random.default_rng(3)
    xa = rng.standard_normal((2000, 32)).astype(np.float32) * 5
    kw = dict(n_hidden=64, epochs=2, storage="ivf", nlist=16, nprobe=2)
    reused, fresh = BioHashIndex(32, 4, **kw), BioHashIndex(32, 4, **kw)
    getattr(reused, how)(xa)
    reused.add(xa)
    reused.reset()
    getattr(reused, how)(xb)
    getattr(fresh, how)(xb)
    for index in (reused, fresh):
        index.add(xb)
    assert serialize_index(reused) == serialize_index(fresh)  # centroids, lists, codes


def test_a_failed_ivf_retrain_keeps_the_trained_index(ivf, xb):
    index = copy.deepcopy(ivf)
    index.reset()
    before = serialize_index(index)
    with pytest.raises(ValueError, match="nlist"):
        index.train(xb[:5])  # fewer vectors than the 8 lists
    assert serialize_index(index) == before and index.is_trained


# ==================================================================== scale (4)
FLT_MAX = float(np.finfo(np.float32).max)


@pytest.mark.parametrize("center", [False, True])
def test_training_is_scale_invariant(xb, center, tmp_path):
    """Powers of two (2**64 ~ 1.8e19, 2**120, 2**-100 ~ 7.9e-31) scale exactly, so the weights
    are bit for bit those of the unscaled data; 1e19, 1e-30 and values up to 0.99 x float32's
    maximum round, so the weights differ by rounding and the codes are the same. Issue: near
    float32's maximum, x - mean and the products overflowed (all codes equal, NaN distances,
    a saved file that did not load). The learned projection: tests/test_subspace.py."""
    def fit(x):
        index = BioHashIndex(32, 4, n_hidden=64, epochs=3, center=center, projection="random")
        index.train(x)
        return index

    ref = fit(xb)
    codes = ref.sa_encode(xb)
    ref.add(xb)
    D_ref, I_ref = ref.search(xb[:20], 5)
    top = 0.99 * FLT_MAX / np.abs(xb).max()
    for scale in (2.0**64, 2.0**120, 2.0**-100, 1e19, 1e-30, top):
        x = xb * np.float32(scale)
        assert np.isfinite(x).all()
        index = fit(x)
        if np.log2(scale).is_integer():
            np.testing.assert_array_equal(index.model.weights_, ref.model.weights_)
        else:
            np.testing.assert_allclose(index.model.weights_, ref.model.weights_, atol=1e-6)
        np.testing.assert_array_equal(index.sa_encode(x), codes)
        index.add(x)
        D, I = index.search(x[:20], 5)
        np.testing.assert_array_equal(I, I_ref)
        np.testing.assert_allclose(D, D_ref, rtol=1e-4)
        index.save(tmp_path / "idx")
        np.testing.assert_array_equal(read_index(tmp_path / "idx").sa_encode(x), codes)


def test_a_save_never_writes_what_a_load_refuses(flat, xb, tmp_path):
    """A model whose weights are not finite (as overflow near float32's maximum made them)
    is refused by the save, which writes nothing, rather than written and refused later."""
    flat.save(tmp_path / "idx")
    before = tree(tmp_path)
    bad = copy.deepcopy(flat)
    W = bad.model.weights_.copy()
    W[3, 5] = np.nan
    bad.model = BioHashModel.from_arrays(bad.params, bad.model.mean_, W)
    for save in (lambda: bad.save(tmp_path / "idx"), lambda: bad.save(tmp_path / "new"),
                 lambda: serialize_index(bad)):
        with pytest.raises(ValueError, match="cannot save the index: mean or weights hold NaN"):
            save()
    assert tree(tmp_path) == before


def test_the_exact_scaling_changes_nothing_on_ordinary_data(xb):
    """Prepared rows are bit for bit the plain float32 normalisation (the codes of indexes
    trained before the scaling are still those of the model)."""
    model = BioHashModel(BioHashParams(32, 4, 64))
    for x in (xb, np.round(np.abs(xb) * 40)):  # and SIFT-like integer values
        x = x.astype(np.float32)
        plain = x / np.linalg.norm(x, axis=1, keepdims=True)
        # the rows training learns from: one block, shuffled by the rng, in mini-batches
        batches = model.batches(lambda: (x,), np.zeros(32, np.float32), np.random.default_rng(0))
        order = np.random.default_rng(0).permutation(len(x))
        np.testing.assert_array_equal(np.concatenate(list(batches)), plain[order])


# ==================================================================== batch size (13)
def test_a_batch_size_larger_than_the_data_is_one_batch(xb):
    """batch_size=10**9 with 50 vectors: the batch buffer is 50 rows, not 10**9 (596 GiB)."""
    big = BioHashIndex(32, 4, n_hidden=64, epochs=3, batch_size=10**9)
    exact = BioHashIndex(32, 4, n_hidden=64, epochs=3, batch_size=50)
    big.train(xb[:50])
    exact.train(xb[:50])
    np.testing.assert_array_equal(big.model.weights_, exact.model.weights_)


# ==================================================================== missing parent (13)
def test_a_missing_parent_directory_is_named_as_requested(flat, tmp_path):
    target = tmp_path / "no" / "such" / "idx"
    with pytest.raises(FileNotFoundError) as err:
        flat.save(target)
    assert err.value.filename == str(target) and ".tmp" not in str(err.value)
    assert str(target.parent) in str(err.value)
    assert not (tmp_path / "no").exists()


# ==================================================================== Arrow integer lists (12)
@pytest.mark.parametrize("list_type", [pa.list_(pa.int64()), pa.large_list(pa.int64()),
                                       pa.list_(pa.int64(), 32)])
def test_arrow_integer_lists_beyond_2_24_read_like_numpy(xb, list_type):
    x = np.arange(10 * 32, dtype=np.int64).reshape(10, 32) + 2**24 - 5
    col = pa.array(x.tolist(), list_type)
    table = pa.table({"embedding": col})
    a, b = BioHashIndex(32, 4, n_hidden=64, epochs=2), BioHashIndex(32, 4, n_hidden=64, epochs=2)
    a.train_from(table)
    b.train(x)
    np.testing.assert_array_equal(a.model.weights_, b.model.weights_)
    a.add_from(table)
    b.add(x)
    np.testing.assert_array_equal(a.storage.codes(), b.storage.codes())


def test_arrow_rows_of_another_length_are_still_reported(xb):
    table = pa.table({"embedding": pa.array([[1] * 32, [2**30] * 31], pa.list_(pa.int64()))})
    with pytest.raises(ValueError, match="32 values per row.*another length"):
        BioHashIndex(32, 4, n_hidden=64, epochs=1).train_from(table)


# ==================================================================== thread settings (11)
def process_wide_blas():
    """Thread counts of the BLAS libraries whose setting is one for the whole process."""
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"
            and lib.get("threading_layer") != "openmp"]


def test_overlapping_thread_limits_restore_blas_when_the_last_leaves():
    """A enters, B enters, A leaves, B leaves (the order that left BLAS at one thread)."""
    before = process_wide_blas()
    steps = [threading.Event() for _ in range(4)]

    def run(enter_after, entered, leave_after, left):
        steps[enter_after].wait(10) if enter_after is not None else None
        with thread_limit(1):
            steps[entered].set()
            steps[leave_after].wait(10)
        steps[left].set()

    a = threading.Thread(target=run, args=(None, 0, 1, 2))
    b = threading.Thread(target=run, args=(0, 1, 2, 3))
    a.start()
    b.start()
    a.join()
    b.join()
    assert all(e.is_set() for e in steps)
    assert process_wide_blas() == before


def test_threads_searching_with_one_thread_leave_blas_as_it_was(flat, xb):
    index = copy.deepcopy(flat)
    index.n_threads = 1
    before = process_wide_blas()
    barrier = threading.Barrier(3)

    def search():
        barrier.wait()
        for _ in range(30):
            index.search(xb[:50], 5)

    threads = [threading.Thread(target=search) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert process_wide_blas() == before


# ==================================================================== failed calls (README)
@pytest.fixture(params=["flat", "ivf", "inverted"])
def filled(request, xb):
    return build(xb, storage=request.param, n_add=300)


FAILING = {
    "train on a filled index": lambda ix, x: ix.train(x),
    "train_from a generator": lambda ix, x: ix.train_from(iter([x])),
    "add with NaN in the last row": lambda ix, x: ix.add(np.vstack([x[:5], [np.nan] * 32])),
    "add_with_ids, last id stored": lambda ix, x: ix.add_with_ids(x[:3], [900, 901, 0]),
    "search with k=0": lambda ix, x: ix.search(x[:3], 0),
    "remove_ids of floats": lambda ix, x: ix.remove_ids(np.array([1.5])),
}


@pytest.mark.parametrize("name", FAILING)
def test_a_call_that_raises_leaves_the_index_unchanged(filled, xb, name):
    before = fingerprint(filled)
    with pytest.raises((ValueError, TypeError, RuntimeError)):
        FAILING[name](filled, xb)
    assert fingerprint(filled) == before


def test_a_failed_save_over_an_index_leaves_it_loadable_and_unchanged(flat, ivf, xb, tmp_path,
                                                                      monkeypatch):
    """docs/format.md: a save that raises before the commit removes what it wrote."""
    path = tmp_path / "idx"
    flat.save(path)
    before = tree(path)
    import biohash_index._formats.index_dir as index_dir

    def fail(*args, **kw):
        raise OSError("disk on fire")

    monkeypatch.setattr(index_dir, "fsync_dir", fail)
    with pytest.raises(OSError, match="disk on fire"):
        ivf.save(path)
    assert tree(path) == before
