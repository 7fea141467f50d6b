"""Persistence under faults: disk full, read-only directories, wrong kinds of path,
concurrent saves and loads, and a fuzz of the loader over mutated saved indexes."""
import copy
import errno
import hashlib
import os
import random
import shutil
import signal
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest

from biohash_index import BioHashFormatError, read_index, serialize_index

from .test_persistence import build, fingerprint, generation, load_in_subprocess, rewrite

resource = pytest.importorskip("resource", reason="POSIX only: fork, rlimits, flock")


@pytest.fixture(scope="module")
def xb(clustered):
    return clustered[0]


@pytest.fixture(scope="module")
def a(xb):
    return build(xb, remove=np.arange(0, 600, 7))


@pytest.fixture(scope="module")
def b(xb):
    """Same training as ``a`` (so model.arrow is identical), other vectors."""
    return build(xb, n_add=300)


def in_child(fn) -> str:
    """Run fn() in a forked child; returns what it returned (a str) or "Name: message" of
    the exception it raised. A child killed by a signal fails the test."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            try:
                out = str(fn())
            except BaseException as e:  # noqa: BLE001 - reported to the parent
                out = f"{type(e).__name__}: {e}"
            os.write(w, out.encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as pipe:
        out = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status), f"child killed by signal {os.WTERMSIG(status)}"
    return out


def digest(index) -> str:
    return hashlib.sha256(serialize_index(index)).hexdigest()


def entries(path: Path) -> list[str]:
    return sorted(os.listdir(path))


# ==================================================================== disk full
def test_disk_full_part_way_through_a_file_keeps_the_previous_index(a, b, xb, tmp_path):
    """A file-size limit makes the write of codes.faiss fail part way with a real OSError
    (EFBIG, as ENOSPC would), after the smaller files were written."""
    big = copy.deepcopy(a)
    big.add(np.tile(xb, (10, 1)))
    path = tmp_path / "idx"
    big.save(path)
    sizes = {p.name: p.stat().st_size for p in generation(path).iterdir()}
    others = max(size for name, size in sizes.items() if name != "codes.faiss")
    limit = (others + sizes["codes.faiss"]) // 2
    assert others < limit < sizes["codes.faiss"]
    b.save(path)

    def save_with_limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        big.save(path)
        return "saved"

    out = in_child(save_with_limit)
    assert out.startswith("OSError") and "File too large" in out, out
    assert fingerprint(read_index(path)) == fingerprint(b)
    assert entries(path) == ["BIOHASH_INDEX", "CURRENT", "LOCK", generation(path).name]


def test_fsync_failing_keeps_the_previous_index(a, b, tmp_path, monkeypatch):
    path = tmp_path / "idx"
    b.save(path)

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError, match="No space left"):
        a.save(path)
    monkeypatch.undo()
    assert fingerprint(read_index(path)) == fingerprint(b)


# ==================================================================== read-only, wrong paths
@pytest.fixture
def shared_dir():
    """A directory others may enter (pytest's tmp_path is private to its owner)."""
    path = Path(tempfile.mkdtemp())
    path.chmod(0o755)
    yield path
    for p in [path, *path.rglob("*")]:
        if p.is_dir():
            p.chmod(0o755)
    shutil.rmtree(path)


def unprivileged(fn):
    """fn run without the right to write where the user may not (root drops to nobody)."""
    def run():
        if os.geteuid() == 0:
            os.setgid(65534)
            os.setuid(65534)
        return fn()
    return run


def test_read_only_directories(a, b, shared_dir):
    path = shared_dir / "idx"
    b.save(path)
    for p in [shared_dir, path, generation(path)]:
        p.chmod(0o555)
    # a new index in a read-only directory, and a new generation in a read-only index
    out = in_child(unprivileged(lambda: a.save(shared_dir / "new")))
    assert out.startswith("PermissionError"), out
    out = in_child(unprivileged(lambda: a.save(path)))
    assert out.startswith("PermissionError"), out
    # a read-only index still loads, unchanged
    out = in_child(unprivileged(lambda: digest(read_index(path))))  # no search: numba's
    assert out == digest(b)  # OpenMP layer refuses to run in a forked child
    assert entries(shared_dir) == ["idx"]
    assert entries(path) == ["BIOHASH_INDEX", "CURRENT", "LOCK", generation(path).name]


def test_a_path_that_is_a_file_or_a_foreign_directory_is_left_alone(a, tmp_path):
    file = tmp_path / "file"
    file.write_bytes(b"precious")
    with pytest.raises(ValueError, match="exists and is not a directory"):
        a.save(file)
    with pytest.raises(BioHashFormatError, match="not a saved index"):
        read_index(file)
    assert file.read_bytes() == b"precious"
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep")
    with pytest.raises(ValueError, match="does not hold a saved index"):
        a.save(folder)
    assert entries(folder) == ["notes.txt"]
    with pytest.raises(BioHashFormatError, match="not a saved index"):
        read_index(tmp_path / "missing")


# ==================================================================== concurrency
def test_concurrent_saves_and_loads_from_threads(a, b, tmp_path):
    """Four threads save a or b to one path (that does not exist at first) while two load
    it: every load sees a or b, complete; one generation remains at the end."""
    path = tmp_path / "idx"
    expected = {fingerprint(a), fingerprint(b)}
    seen, errors, saving = [], [], threading.Event()
    saving.set()

    def save(index):
        try:
            for _ in range(5):
                index.save(path)
        except BaseException as e:  # noqa: BLE001 - collected for the assertion below
            errors.append(e)

    def load():
        while saving.is_set():
            if (path / "CURRENT").exists():
                try:
                    seen.append(serialize_index(read_index(path)))
                except BaseException as e:  # noqa: BLE001
                    errors.append(e)

    loaders = [threading.Thread(target=load) for _ in range(2)]
    savers = [threading.Thread(target=save, args=(x,)) for x in (a, b, a, b)]
    for t in loaders + savers:
        t.start()
    for t in savers:
        t.join()
    saving.clear()
    for t in loaders:
        t.join()
    assert errors == []
    assert {hashlib.sha256(s).hexdigest() for s in seen} <= {digest(a), digest(b)}
    assert fingerprint(read_index(path)) in expected
    assert entries(path) == ["BIOHASH_INDEX", "CURRENT", "LOCK", generation(path).name]
    assert entries(tmp_path) == ["idx"]


def test_concurrent_saves_from_processes(a, b, tmp_path):
    path = tmp_path / "idx"
    pids = []
    for index in (a, b, a):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                for _ in range(4):
                    index.save(path)
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    assert all(os.waitpid(pid, 0)[1] == 0 for pid in pids)
    assert fingerprint(read_index(path)) in {fingerprint(a), fingerprint(b)}
    assert entries(path) == ["BIOHASH_INDEX", "CURRENT", "LOCK", generation(path).name]
    assert entries(tmp_path) == ["idx"]


# ==================================================================== fuzz
SWAPPABLE = ("manifest.json", "model.arrow", "meta.arrow", "codes.faiss", "../CURRENT")


def flip_bytes(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        out[rng.randrange(len(out))] ^= rng.randint(1, 255)
    return bytes(out)


def mutate(path: Path, other: Path, rng: random.Random) -> str:
    """Apply one random mutation to the saved index at path; returns its description."""
    gen, other_gen = generation(path), generation(other)
    kind = rng.choice(["flip", "truncate", "swap"])
    if kind == "swap":
        names = rng.sample(SWAPPABLE, rng.randint(1, len(SWAPPABLE)))
        for name in names:
            shutil.copyfile(other_gen / name, gen / name)
        return f"swap {names}"
    name = rng.choice(SWAPPABLE)
    data = (gen / name).read_bytes()
    if kind == "flip":
        (gen / name).write_bytes(flip_bytes(data, rng))
    else:
        (gen / name).write_bytes(data[:rng.randrange(len(data))])
    return f"{kind} {name}"


def test_fuzz_mutated_saved_indexes_load_correctly_or_raise(a, b, tmp_path):
    """Every mutant (bytes flipped, truncated, files swapped with another saved index) loads
    in a child process as a or b exactly, or raises BioHashFormatError; the same for
    mutated serialized bytes."""
    a.save(tmp_path / "a")
    b.save(tmp_path / "b")
    rng = random.Random(8)
    cases = {}
    for i in range(150):
        path = tmp_path / f"m{i}"
        shutil.copytree(tmp_path / "a", path)
        cases[str(path)] = mutate(path, tmp_path / "b", rng)
    blob = serialize_index(a)
    for i in range(40):
        path = tmp_path / f"s{i}.bin"
        data = flip_bytes(blob, rng) if i % 2 else blob[:rng.randrange(len(blob))]
        path.write_bytes(data)
        cases[str(path)] = "serialized " + ("flip" if i % 2 else "truncate")
    results = load_in_subprocess(cases)
    good = {fingerprint(a), fingerprint(b)}
    outcomes = {"ok": 0, "format": 0}
    for path, how in cases.items():
        status, detail = results[path]
        assert status in outcomes, f"{how}: {status} {detail}"
        assert status == "format" or detail in good, f"{how}: loaded a wrong index"
        outcomes[status] += 1
    assert outcomes["format"] > 100 and outcomes["ok"] > 0


def forge_arrow(path: Path, rng: random.Random) -> str:
    """Flip bytes of an Arrow file and fix the manifest, so the checksums pass."""
    gen = generation(path)
    name = rng.choice(["model.arrow", "meta.arrow"])
    rewrite(gen, name, flip_bytes((gen / name).read_bytes(), rng))
    return f"forged {name}"


def test_fuzz_forged_arrow_files_never_crash_the_loader(a, tmp_path):
    """Arrow files flipped behind valid checksums (a forgery, not corruption) reach the
    Arrow parser and the consistency checks: they load or raise BioHashFormatError, and
    never crash the process or raise anything else."""
    a.save(tmp_path / "a")
    rng = random.Random(9)
    cases = {}
    for i in range(60):
        path = tmp_path / f"f{i}"
        shutil.copytree(tmp_path / "a", path)
        cases[str(path)] = forge_arrow(path, rng)
    results = load_in_subprocess(cases)
    for path, how in cases.items():
        status, detail = results[path]
        assert status in ("ok", "format"), f"{how}: {status} {detail}"
