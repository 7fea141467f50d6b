"""Hostile files against every file format (``biohash_index._formats``), parametrised.

Each format is loaded through each of its loaders (paths and bytes, the integrations' too)
from files made hostile in the ways that apply to it: a FIFO in its place, truncation, tar
members that declare more than they hold (GNU sparse, base-256 and huge sizes), a faiss
codes.faiss declaring a 1 GiB vector behind a recomputed checksum, Arrow IPC buffers
compressed to expand by BALLOON bytes, and damaged store and refine contents. Every
load runs in a child process (``report``), so a hang or a crash fails the test naming the
case; each must end in a BioHashFormatError naming the file and the part, with the child's
peak memory grown by less than GROWTH_MIB.
"""
import copyreg
import hashlib
import io
import json
import os
import pickle
import resource
import stat
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from biohash_index import BioHashFormatError, BioHashIndex, BioHashIndexRefine, serialize_index
from biohash_index._checksum_kernels import xxh64
from biohash_index._formats import shards as sm
from biohash_index.store import BioHashStore, Record

from .test_persistence import run_reporting_child

GROWTH_MIB = 48     # a hostile load may grow the child's peak memory by less than this
BALLOON = 128 << 20  # bytes a compressed Arrow buffer expands to
posix = pytest.mark.skipif(os.name != "posix", reason="POSIX FIFOs")


# ==================================================================== the loaders
def loaders():
    """{name: load(path)} of every loader of every format, for the child."""
    from biohash_index import deserialize_index, read_index, read_index_refine
    out = {
        "index": read_index,
        "serialized": lambda p: deserialize_index(Path(p).read_bytes()),
        "serialized-path": deserialize_index,
        "pickle": lambda p: pickle.loads(Path(p).read_bytes()),
        "shard": lambda p: sm.read_shard(Path(p).parent, entry_of(p), "0" * 64),
        "manifest": lambda p: sm.read_manifest(Path(p).parent),
        "refine": read_index_refine,
        "refine-bytes": lambda p: read_index_refine(Path(p).read_bytes()),
        "store": BioHashStore.load,
        "store-bytes": lambda p: BioHashStore.from_bytes(Path(p).read_bytes()),
    }
    try:
        from langchain_biohash import BioHashVectorStore as LangChainStore
        from langchain_core.embeddings import DeterministicFakeEmbedding
        out["langchain"] = lambda p: LangChainStore.load_local(
            Path(p).parent, DeterministicFakeEmbedding(size=32), index_name=Path(p).stem)
        out["langchain-bytes"] = lambda p: LangChainStore.deserialize_from_bytes(
            Path(p).read_bytes(), DeterministicFakeEmbedding(size=32))
    except ImportError:
        pass
    try:
        from llama_index.vector_stores.biohash import BioHashVectorStore as LlamaStore
        out["llamaindex"] = LlamaStore.from_persist_path
    except ImportError:
        pass
    return out


def entry_of(path) -> dict:
    """A manifest entry vouching for the file at path (a forger recomputes checksums)."""
    if stat_is_fifo(path):
        return {"file": Path(path).name, "size": 0, "sha256": "0" * 64}
    data = Path(path).read_bytes()
    return {"file": Path(path).name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def stat_is_fifo(path) -> bool:
    return stat.S_ISFIFO(os.lstat(path).st_mode)


def report(jobs) -> None:
    """In a child: run each (loader, path) job and print one JSON line per job: status
    ("ok", "format", "other" or "missing" for an integration not installed), the message,
    and the growth of the peak memory in MiB."""
    found = loaders()
    xxh64(np.zeros(0, np.uint8))   # numba's runtime, started once per process, is no load's growth
    for job in jobs:
        loader, path = job.split("=", 1)
        print(json.dumps(["start", job]), flush=True)
        before = reset_peak_memory()
        try:
            if loader not in found:
                out = ["missing", loader]
            else:
                found[loader](path)
                out = ["ok", ""]
        except BioHashFormatError as e:
            out = ["format", str(e)]
        except BaseException as e:  # noqa: BLE001 - reported to the parent as a failure
            out = ["other", f"{type(e).__name__}: {e}"]
        growth = (peak_memory() - before) / 2**20
        print(json.dumps([*out, growth]), flush=True)


def reset_peak_memory() -> int:
    """Start the peak resident set size again from the current one (Linux), which this
    returns in bytes; elsewhere the peak so far (so a later growth is only a lower bound)."""
    if not os.path.exists("/proc/self/clear_refs"):
        return peak_memory()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return peak_memory()


def peak_memory() -> int:
    """The peak resident set size in bytes (since the last reset_peak_memory, on Linux)."""
    if os.path.exists("/proc/self/status"):
        with open("/proc/self/status") as f:
            return int(next(ln for ln in f if ln.startswith("VmHWM:")).split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_children(jobs, timeout=300) -> dict:
    """{job: (status, message, growth MiB)} from ``report`` in a child."""
    code = "import sys; from tests.test_formats import report; report(sys.argv[1:])"
    return run_reporting_child(code, jobs, timeout)


# ==================================================================== hostile bytes
def tar_header(name: str, size: bytes, kind: bytes, sparse_size: bytes = b"") -> bytes:
    """A GNU tar header block: ``size`` the 12-byte size field as given (octal or base-256),
    for a sparse member (kind b"S") ``sparse_size`` its expanded size field."""
    h = bytearray(512)
    h[0:len(name)] = name.encode()
    h[100:108], h[108:116], h[116:124] = b"0000644\0", b"0000000\0", b"0000000\0"
    h[124:136] = size
    h[136:148] = b"00000000000\0"
    h[156:157] = kind
    h[257:265] = b"ustar  \0"   # GNU magic
    if kind == b"S":
        h[386:398], h[398:410] = b"00000000000\0", b"00000000000\0"  # one hole, no data
        h[483:495] = sparse_size
    h[148:156] = b" " * 8
    h[148:156] = f"{sum(h):06o}\0 ".encode()
    return bytes(h)


def base256(n: int) -> bytes:
    return bytes([0x80]) + n.to_bytes(11, "big")


def hostile_tar(valid: bytes, how: str) -> bytes:
    """The tar form of an index with codes.faiss replaced by a member that declares more
    than it holds (its manifest entry recomputed is pointless: the member is refused)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(valid)) as src:
        for member in src.getmembers():
            if member.name != "codes.faiss":
                out.write(member.tobuf(format=tarfile.USTAR_FORMAT))
                data = src.extractfile(member).read()
                out.write(data + bytes(-len(data) % 512))
    out.write({
        "tar-sparse-1GiB": tar_header("codes.faiss", b"00000000000\0", b"S",
                                      f"{1 << 30:011o}\0".encode()),
        "tar-sparse-1TiB": tar_header("codes.faiss", b"00000000000\0", b"S", base256(1 << 40)),
        "tar-base256-size": tar_header("codes.faiss", base256(1 << 40), b"0"),
        "tar-huge-size": tar_header("codes.faiss", f"{(1 << 33) - 1:011o}\0".encode(), b"0"),
    }[how])
    out.write(bytes(1024))
    return out.getvalue()


def faiss_giant(valid: bytes) -> bytes:
    """The tar form of an index whose codes.faiss declares a 1 GiB vector of codes (faiss
    would allocate it before finding 1 KiB), its manifest entry recomputed to match."""
    with tarfile.open(fileobj=io.BytesIO(valid)) as src:
        files = {m.name: src.extractfile(m).read() for m in src.getmembers()}
    codes = bytearray(files["codes.faiss"])
    assert codes[:4] == b"IBMp" and codes[25:29] == b"IBxF"
    codes[50:58] = (1 << 30).to_bytes(8, "little")   # IBxF's header ends at byte 50
    files["codes.faiss"] = bytes(codes)
    manifest = json.loads(files["manifest.json"])
    manifest["files"]["codes.faiss"] = {"size": len(codes),
                                        "sha256": hashlib.sha256(codes).hexdigest()}
    files["manifest.json"] = json.dumps(manifest).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def arrow_bytes(table: pa.Table, compression=None) -> bytes:
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression=compression)
    with pa.ipc.new_file(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def with_metadata(data: bytes, **changes) -> bytes:
    table = pa.ipc.open_file(pa.py_buffer(data)).read_all()
    meta = {**table.schema.metadata, **{k.encode(): v for k, v in changes.items()}}
    return arrow_bytes(table.replace_schema_metadata(meta))


def balloon(data: bytes, compression: str) -> bytes:
    """The Arrow file ``data`` (a store or refine file) with one more column, a list whose
    first row holds BALLOON bytes of zeros, compressed to a few KiB."""
    table = pa.ipc.open_file(pa.py_buffer(data)).read_all()
    n = BALLOON // 8
    offsets = np.full(table.num_rows + 1, n, np.int32)
    offsets[0] = 0
    big = pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.zeros(n, np.int64)))
    return arrow_bytes(table.append_column("balloon", big), compression)


class HostilePickle:
    """Pickles as a BioHashIndex whose state is the given (hostile) serialized bytes."""

    def __init__(self, data: bytes):
        self.data = data

    def __reduce__(self):
        return copyreg._reconstructor, (BioHashIndex, object, None), {"index": self.data}


# ==================================================================== the valid files
@pytest.fixture(scope="module")
def valid(tmp_path_factory, clustered):
    """{name: bytes} of a valid file of each format (the index directory apart)."""
    xb = clustered[0]
    index = BioHashIndex(32, 4, n_hidden=64, epochs=2, task="labels")
    index.train(xb)
    index.add(xb)
    refine = BioHashIndexRefine(BioHashIndex(32, 4, n_hidden=64, epochs=2, task="labels"))
    refine.train(xb)
    refine.add(xb[:100])
    folder = tmp_path_factory.mktemp("valid")
    refine.save(folder / "refine.arrow")
    store = BioHashStore(train_threshold=50, epochs=2)
    store.add(xb[:60], [Record(f"r{i}", f"text {i}", {"i": i}) for i in range(60)])
    assert store.is_hashed
    return {"serialized": serialize_index(index), "refine": (folder / "refine.arrow").read_bytes(),
            "store": store.to_bytes(), "index": index}


TAR_CASES = ("tar-sparse-1GiB", "tar-sparse-1TiB", "tar-base256-size", "tar-huge-size",
             "faiss-1GiB-vector")
ARROW_CASES = ("arrow-zstd", "arrow-lz4")
# the loaders of each format that holds an index's tar form (itself, or inside it)
TAR_JOBS = {"serialized": ("serialized", "serialized-path"), "pickle": ("pickle",),
            "shard": ("shard",), "refine": ("refine", "refine-bytes"),
            "store": ("store", "store-bytes", "langchain", "langchain-bytes", "llamaindex")}
# the loaders that open a path
FIFO_JOBS = {"serialized": ("serialized-path",), "shard": ("shard",), "refine": ("refine",),
             "store": ("store", "langchain", "llamaindex"), "manifest": ("manifest",)}
FILE_NAMES = {"store": "index.arrow", "refine": "refine.arrow",
              "shard": "shard-000000-00000000.bhx", "manifest": sm.version_file(0)}
STORE_DAMAGE = {   # case: (changes of columns or metadata, the part the message must name)
    "key-float": ({"key": pa.array(np.arange(60, dtype=np.float64))}, "column 'key'"),
    "key-null": ({"key": pa.array([None] * 60, pa.int64())}, "column 'key'"),
    "key-string": ({"key": pa.array([str(i) for i in range(60)])}, "column 'key'"),
    "id-null": ({"id": pa.array([None] * 60, pa.string())}, "column 'id'"),
    "vector-nan": ({"vector": None}, "column 'vector'"),
    "metadata-deep": ({"metadata": pa.array(["[" * 100_000 + "]" * 100_000] * 60)},
                      "row 0: metadata"),
    "metadata-100": ({"metadata": pa.array(['{"a":' * 100 + "1" + "}" * 100] * 60)},
                     "row 0: metadata"),
    "metadata-list": ({"metadata": pa.array(["[1]"] * 60)}, "row 0: metadata"),
    "config": ({"config": b"[1, 2]"}, "config"),
    "next_key": ({"next_key": b"-1"}, "next_key"),
    "codes-of-other-keys": ({"key": pa.array(np.arange(60, dtype=np.int64) + 1000),
                             "next_key": b"2000"}, "biohash_index"),
}
REFINE_DAMAGE = {
    "id-null": ({"id": pa.array([None] * 100, pa.int64())}, "column 'id'"),
    "id-float": ({"id": pa.array(np.arange(100, dtype=np.float64))}, "columns"),
    "vector-nan": ({"vector": None}, "vector"),
    "ids-not-the-base": ({"id": pa.array(np.arange(100, dtype=np.int64) + 7)},
                         "not those of the base index's codes"),
    "metric": ({"metric": b"cosine"}, "metric"),
    "k_factor": ({"k_factor": b"nan"}, "k_factor"),
    "version": ({"version": b"3"}, "format version"),
}


def plan() -> list[tuple[str, str, tuple, str]]:
    """(format, how, its loaders, the part their messages must name) of every case."""
    out = []
    for fmt, jobs in TAR_JOBS.items():
        out += [(fmt, how, jobs, "codes.faiss") for how in TAR_CASES]
        out.append((fmt, "truncated", jobs, ""))
    out += [(fmt, how, TAR_JOBS[fmt], part) for fmt in ("refine", "store")
            for how, part in [(how, "compressed") for how in ARROW_CASES]
            + [("truncated-file", "not a valid Arrow IPC file")]]
    out += [(fmt, "fifo", jobs, "not a regular file") for fmt, jobs in FIFO_JOBS.items()]
    out += [("store", how, TAR_JOBS["store"], part) for how, (_, part) in STORE_DAMAGE.items()]
    out += [("refine", how, TAR_JOBS["refine"], part) for how, (_, part) in REFINE_DAMAGE.items()]
    return out


def damaged(data: bytes, changes: dict) -> bytes:
    """The Arrow file ``data`` with columns (arrays; None: NaN in every 7th vector value) or
    schema metadata (bytes) replaced."""
    table = pa.ipc.open_file(pa.py_buffer(data)).read_all()
    meta = dict(table.schema.metadata)
    for name, value in changes.items():
        if isinstance(value, bytes):
            meta[name.encode()] = value
            continue
        if value is None:
            flat = table[name].combine_chunks().flatten().to_numpy().copy()
            flat[::7] = np.nan
            value = pa.FixedSizeListArray.from_arrays(pa.array(flat), table[name].type.list_size)
        table = table.set_column(table.column_names.index(name), name, value)
    return arrow_bytes(table.replace_schema_metadata(meta))


def hostile_bytes(valid: dict, fmt: str, how: str) -> bytes:
    wrap = {"serialized": lambda t: t, "shard": lambda t: t,
            "pickle": lambda t: pickle.dumps(HostilePickle(t)),
            "refine": lambda t: with_metadata(valid["refine"], base=t),
            "store": lambda t: with_metadata(valid["store"], biohash_index=t)}[fmt]
    if how == "faiss-1GiB-vector":
        return wrap(faiss_giant(valid["serialized"]))
    if how in TAR_CASES:
        return wrap(hostile_tar(valid["serialized"], how))
    if how == "truncated":    # the tar form cut in half
        return wrap(valid["serialized"][:len(valid["serialized"]) // 2])
    if how == "truncated-file":
        return valid[fmt][:len(valid[fmt]) // 2]
    if how in ARROW_CASES:
        return balloon(valid[fmt], how.split("-")[1])
    return damaged(valid[fmt], (STORE_DAMAGE if fmt == "store" else REFINE_DAMAGE)[how][0])


def write_case(valid: dict, fmt: str, how: str, folder: Path) -> Path:
    """The hostile file of one case, in a folder of its own; a FIFO for "fifo"."""
    folder.mkdir()
    if fmt == "manifest":
        sm.create(folder, valid["index"]._state())
        (folder / sm.version_file(0)).unlink()
    path = folder / FILE_NAMES.get(fmt, "file.bin")
    if how == "fifo":
        os.mkfifo(path)
    else:
        path.write_bytes(hostile_bytes(valid, fmt, how))
    return path


@pytest.fixture(scope="module")
def results(valid, tmp_path_factory):
    """{case: (status, message, growth MiB, path, the part to name)}, loaded in one child."""
    if os.name != "posix":
        pytest.skip("POSIX FIFOs and resource usage")
    folder = tmp_path_factory.mktemp("hostile")
    jobs = {}
    for fmt, how, loaders_, part in plan():
        path = write_case(valid, fmt, how, folder / f"{fmt}-{how}")
        jobs.update({f"{loader}:{how}": (f"{loader}={path}", path, part) for loader in loaders_})
    found = run_children([job for job, _, _ in jobs.values()])
    return {case: (*found[job], path, part) for case, (job, path, part) in jobs.items()}


@pytest.mark.parametrize("case", [f"{loader}:{how}" for _, how, loaders_, _ in plan()
                                  for loader in loaders_])
def test_a_hostile_file_is_a_format_error_naming_it(results, case):
    status, message, growth, path, part = results[case]
    if status == "missing":
        pytest.skip(f"{message} is not installed")
    assert status == "format", f"{case}: {status} {message}"
    named = path.name if not case.split(":")[0].endswith(("-bytes", "serialized", "pickle")) \
        else ("bytes", "serialized index", "refine file")
    assert message.startswith(named) or str(path) in message, f"{case}: names no file: {message}"
    assert part in message, f"{case}: the message does not name {part!r}: {message}"
    assert growth < GROWTH_MIB, f"{case}: the load grew memory by {growth:.0f} MiB"


def test_the_files_the_cases_start_from_load(valid, tmp_path):
    """Each loader reads the valid file the hostile cases are made from."""
    paths = {"store": "index.arrow", "refine": "refine.arrow", "serialized": "s.bin"}
    for fmt, name in paths.items():
        (tmp_path / name).write_bytes(valid[fmt])
    jobs = [f"{loader}={tmp_path / paths[fmt]}" for fmt in paths for loader in TAR_JOBS[fmt]
            if fmt != "serialized" or loader == "serialized-path"]
    for job, (status, message, _) in run_children(jobs).items():
        assert status in ("ok", "missing"), f"{job}: {status} {message}"


# ==================================================================== files of earlier versions
DATA = Path(__file__).parent / "data"   # written by biohash-index 0.1 before the formats moved


@pytest.fixture()
def encodes(monkeypatch) -> list:
    """The number of rows of every BioHashModel.encode call from now on."""
    from biohash_index._model import BioHashModel
    calls, encode = [], BioHashModel.encode
    monkeypatch.setattr(BioHashModel, "encode",
                        lambda self, x: calls.append(len(x)) or encode(self, x))
    return calls


def test_a_refine_file_of_version_1_loads_and_searches_the_same(encodes):
    """No "version" in its metadata (format 1); its base keeps the codes it saved."""
    from biohash_index import read_index_refine
    expected = np.load(DATA / "v1-refine.expected.npz")
    index = read_index_refine(DATA / "v1-refine.arrow")
    assert encodes == []   # loading encoded nothing
    D, I = index.search(expected["xq"], 8)
    np.testing.assert_array_equal(D, expected["D"])
    np.testing.assert_array_equal(I, expected["I"])


def test_a_store_file_of_version_1_loads_and_searches_the_same(encodes):
    expected = np.load(DATA / "v1-store.expected.npz")
    store = BioHashStore.load(DATA / "v1-store.arrow")
    assert store.is_hashed and encodes == []
    for q, ids, distances in zip(expected["xq"], expected["ids"], expected["distances"]):
        hits = store.search(q, 6)
        assert [h.record.id for h in hits] == ids.tolist()
        # the exact re-rank is recomputed from the stored vectors: equal up to float32 rounding
        np.testing.assert_allclose([h.distance for h in hits], distances, rtol=1e-5)
    assert store.get(["d3"])[0].text == "replaced"


def test_a_sharded_index_of_format_1_loads_and_is_upgraded_by_a_commit(tmp_path):
    import shutil
    root = shutil.copytree(DATA / "v1-sharded", tmp_path / "s")
    expected = np.load(DATA / "v1-sharded.expected.npz")
    manifest = sm.read_manifest(root)
    assert manifest["format_version"] == 1 and manifest["changes"] == []
    shards = [sm.read_shard(root, e, manifest["model_digest"]) for e in manifest["shards"]]
    np.testing.assert_array_equal(np.concatenate([s.storage.ids() for s in shards]),
                                  expected["ids"])
    np.testing.assert_array_equal(np.concatenate([s.storage.codes() for s in shards]),
                                  expected["codes"])
    sm.commit(root, sm.next_manifest(manifest, manifest["shards"][:1], 2))
    assert sm.read_manifest(root)["format_version"] == sm.FORMAT_VERSION
    assert sorted(os.listdir(root)) == sorted([sm.TEMPLATE, sm.version_file(2),
                                               *(e["file"] for e in manifest["shards"])])


# ==================================================================== the reader's dependency
@pytest.mark.parametrize("pyproject", ["pyproject.toml", "integrations/langchain/pyproject.toml",
                                       "integrations/llamaindex/pyproject.toml"])
def test_every_package_requires_a_pyarrow_that_does_not_unpickle(pyproject):
    """pyarrow 0.14.0 to 14.0.0 unpickle extension types while reading IPC files
    (CVE-2023-47248, fixed in 14.0.1): with them, a crafted store ran a shell command."""
    import tomllib
    from packaging.requirements import Requirement
    root = Path(__file__).resolve().parents[1]
    deps = tomllib.loads((root / pyproject).read_text())["project"]["dependencies"]
    pyarrow = [Requirement(d) for d in deps if Requirement(d).name == "pyarrow"]
    assert len(pyarrow) == 1, f"{pyproject} must require pyarrow itself"
    assert not pyarrow[0].specifier.contains("14.0.0")
    assert pyarrow[0].specifier.contains("14.0.1")
