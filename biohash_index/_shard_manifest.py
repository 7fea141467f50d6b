"""The on-disk form of a sharded index: shard files, and the manifest that makes them one index.

A sharded index is a directory every worker can read and write (a shared file system)::

    root/shards.json            the manifest, replaced atomically on every change
    root/template.bhx           the trained, empty index every shard was built from
    root/shard-000000-<tag>.bhx  a shard: an index holding some of the vectors
    root/shard-000001-<tag>.bhx  ...

Each ``.bhx`` file is one index as ``serialize_index`` writes it (a tar of a saved generation,
docs/format.md), written atomically and never modified: a change writes new shard files under
new names, replaces the manifest (the commit point), then deletes the files it no longer
lists. The manifest, JSON::

    {"format": "biohash-sharded-index", "format_version": 1, "version": changes so far,
     "model_digest": sha256 of the model and storage settings (``model_digest``),
     "next_id": one more than the largest id ever added, "next_serial": the next file number,
     "template": {"file", "size", "sha256"},
     "shards": [{"file", "size", "sha256", "ntotal", "min_id", "max_id"}, ...]}

A shard is loaded (``read_shard``) only after its size and sha256 match its entry, and used only
if its model digest is the manifest's: a shard file rebuilt or swapped since is an error
naming it, never a silently different index.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import secrets
from pathlib import Path

import faiss
import numpy as np

from ._files import BioHashFormatError, read_regular_file, write_bytes_atomic
from ._index import BioHashIndex, deserialize_index, serialize_index

FORMAT_NAME = "biohash-sharded-index"
FORMAT_VERSION = 1
MANIFEST = "shards.json"
TEMPLATE = "template.bhx"
SHARD_FILE = re.compile(r"shard-[0-9]{6,}-[0-9a-f]{8}\.bhx")
MAX_MANIFEST_BYTES = 1 << 26   # 64 MiB: some 300,000 shards
SHA256 = re.compile(r"[0-9a-f]{64}")


def shard_file(serial: int) -> str:
    """A new shard file name: its serial number, and a random tag so that two writers
    (one of which will fail to commit) never write the same file."""
    return f"shard-{serial:06d}-{secrets.token_hex(4)}.bhx"


def model_digest(index: BioHashIndex) -> str:
    """sha256 of what every shard of one index must share: the model's hyperparameters and
    weights, and the storage kind and settings (for IVF, its nlist, nprobe and centroids)."""
    model, storage = index.model, index.storage
    h = hashlib.sha256()
    h.update(json.dumps(dataclasses.asdict(model.params), sort_keys=True).encode())
    h.update(json.dumps([storage.kind, storage.code_size]).encode())
    for a in (model.mean_, model.weights_):
        h.update(np.ascontiguousarray(a, np.float32).tobytes())
    if storage.kind == "ivf":
        h.update(json.dumps([storage.nlist, storage.nprobe]).encode())
        quantizer = faiss.downcast_IndexBinary(storage.index.quantizer)
        h.update(faiss.vector_to_array(quantizer.xb).tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------------- shard files
def write_shard(index: BioHashIndex, root, name: str) -> dict:
    """Save ``index`` as the file ``root/name`` (atomically); returns its manifest entry."""
    data = serialize_index(index)
    write_bytes_atomic(data, Path(root) / name)
    ids = index.storage.ids()
    return {"file": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "ntotal": int(index.ntotal), "min_id": int(ids.min()) if len(ids) else None,
            "max_id": int(ids.max()) if len(ids) else None}


def read_shard(root, entry: dict, digest: str) -> BioHashIndex:
    """Load the shard of manifest ``entry`` after checking its size and sha256, then check
    that its model digest is ``digest`` and its ntotal the entry's; BioHashFormatError
    naming the file otherwise."""
    path = Path(root) / entry["file"]
    data = read_regular_file(path, size=entry["size"])
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise BioHashFormatError(f"{path}: sha256 checksum differs from the manifest's "
                                 "(damaged, or rebuilt since the manifest was written)")
    try:
        index = deserialize_index(data)
    except BioHashFormatError as e:
        raise BioHashFormatError(f"{path}: {e}") from None
    if model_digest(index) != digest:
        raise BioHashFormatError(f"{path}: built with another model or storage than the "
                                 f"sharded index (model digest {model_digest(index)[:12]}..., "
                                 f"expected {digest[:12]}...)")
    if "ntotal" in entry and index.ntotal != entry["ntotal"]:
        raise BioHashFormatError(f"{path}: holds {index.ntotal} vectors, the manifest says "
                                 f"{entry['ntotal']}")
    return index


# ---------------------------------------------------------------------- manifest
def new_manifest(template: BioHashIndex, template_entry: dict) -> dict:
    return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "version": 0,
            "model_digest": model_digest(template), "next_id": 0, "next_serial": 0,
            "template": {k: template_entry[k] for k in ("file", "size", "sha256")},
            "shards": []}


def create(root, template: BioHashIndex) -> dict:
    """Make ``root`` (absent or an empty directory) a sharded index without shards; returns
    its manifest."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise ValueError(f"directory {str(root)!r} is not empty: a new sharded index needs an "
                         "empty or new directory (ShardedIndex.open reopens an existing one)")
    manifest = new_manifest(template, write_shard(template, root, TEMPLATE))
    write_manifest(root, manifest)
    return manifest


def write_manifest(root, manifest: dict, expected_version: int | None = None) -> None:
    """Replace the manifest atomically; if ``expected_version`` is given, only if the
    manifest on disk still has that version (else RuntimeError: someone else changed it)."""
    root = Path(root)
    if expected_version is not None:
        found = read_manifest(root)["version"]
        if found != expected_version:
            raise RuntimeError(f"{root / MANIFEST}: changed by another writer since it was "
                               f"read (version {found}, expected {expected_version}); "
                               "reopen the index and try again")
    write_bytes_atomic(json.dumps(manifest, indent=1).encode(), root / MANIFEST)


def read_manifest(root) -> dict:
    """The manifest of the sharded index at ``root``, checked; BioHashFormatError if it is
    missing or malformed."""
    path = Path(root) / MANIFEST
    try:
        manifest = json.loads(read_regular_file(path, limit=MAX_MANIFEST_BYTES))
    except (ValueError, RecursionError) as e:
        raise BioHashFormatError(f"{path}: not valid JSON ({e})") from None
    _check_manifest(manifest, path)
    return manifest


def _check_manifest(m, path) -> None:
    def bad(what):
        raise BioHashFormatError(f"{path}: {what}")

    if not isinstance(m, dict) or m.get("format") != FORMAT_NAME:
        bad(f"not a sharded index manifest (format {FORMAT_NAME!r} expected)")
    if m.get("format_version") != FORMAT_VERSION:
        bad(f"format version {m.get('format_version')!r}, this library reads {FORMAT_VERSION}")
    for key in ("version", "next_id", "next_serial"):
        if not _is_int(m.get(key)) or m[key] < 0:
            bad(f"{key} must be an integer >= 0")
    if not isinstance(m.get("model_digest"), str) or not SHA256.fullmatch(m["model_digest"]):
        bad("model_digest must be a sha256 hex digest")
    _check_file_entry(m.get("template"), re.compile(re.escape(TEMPLATE)), bad)
    shards = m.get("shards")
    if not isinstance(shards, list):
        bad("shards must be a list")
    for e in shards:
        _check_file_entry(e, SHARD_FILE, bad)
        if not (_is_int(e.get("ntotal")) and e["ntotal"] >= 1 and _is_int(e.get("min_id"))
                and _is_int(e.get("max_id")) and e["min_id"] <= e["max_id"] < m["next_id"]
                and e["max_id"] - e["min_id"] + 1 >= e["ntotal"]):
            bad(f"{e['file']}: ntotal, min_id and max_id must be integers with "
                "1 <= ntotal <= max_id - min_id + 1 and min_id <= max_id < next_id")
    if len({e["file"] for e in shards}) != len(shards):
        bad("a shard file is listed twice")


def _check_file_entry(e, name: re.Pattern, bad) -> None:
    if not (isinstance(e, dict) and isinstance(e.get("file"), str) and name.fullmatch(e["file"])
            and _is_int(e.get("size")) and e["size"] >= 0 and isinstance(e.get("sha256"), str)
            and SHA256.fullmatch(e["sha256"])):
        bad(f"bad file entry {str(e)[:200]} (file name, size and sha256 expected)")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def remove_files(root, names) -> None:
    """Delete the files ``names`` under ``root``, best effort (files no manifest lists)."""
    for name in names:
        try:
            os.unlink(Path(root) / name)
        except OSError:
            pass
