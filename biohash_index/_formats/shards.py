"""The sharded index format ("biohash-sharded-index", version 2): shard files, and the
manifests that make them one index.

A sharded index is a directory every worker can read and write (a shared file system)::

    root/shards-000000000007.json   the current manifest: the highest version
    root/template.bhx               the trained, empty index every shard was built from
    root/shard-000000-<tag>.bhx     a shard: an index holding some of the vectors
    root/shard-000001-<tag>.bhx     ...

Each ``.bhx`` file is one index in the tar form of the index format (``index.serialize_state``,
docs/format.md), written atomically and never modified: a change writes new shard files under
new names, creates the manifest of the next version (the commit point), then deletes the
files and older manifests the new one no longer needs. The next version's file is created
exclusively (``publish_new_file``: a hard link, atomic on NFS too), so two writers that made
changes on the same version cannot both commit: a compare-and-swap (``commit``). A manifest,
JSON::

    {"format": "biohash-sharded-index", "format_version": 2, "version": changes so far,
     "changes": tokens of the last changes (HISTORY), the last one this version's,
     "model_digest": sha256 of the model and storage settings (``model_digest``),
     "next_id": one more than the largest id ever added, "next_serial": the next file number,
     "template": {"file", "size", "sha256"},
     "shards": [{"file", "size", "sha256", "ntotal", "min_id", "max_id"}, ...]}

Format version 1 kept one manifest, ``shards.json``, replaced in place; it is read while no
version file exists, and removed by the first commit of a version file.

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

from ._io import (BioHashFormatError, parse_json, publish_new_file, read_regular_file,
                  write_bytes_atomic)
from .index import ADDED_PARAMS, IndexState, deserialize_state, serialize_state

FORMAT_NAME = "biohash-sharded-index"
FORMAT_VERSION = 2
READS_VERSIONS = (1, 2)
LEGACY_MANIFEST = "shards.json"   # format version 1: one manifest, replaced in place
VERSION_FILE = re.compile(r"shards-([0-9]{12})\.json")
TEMPORARY = re.compile(r"\.shards-([0-9]{12})\.json\.tmp-[0-9a-f]{16}")  # publish_new_file's
HISTORY = 64   # change tokens a manifest keeps: how a retried commit knows it committed
TEMPLATE = "template.bhx"
SHARD_FILE = re.compile(r"shard-[0-9]{6,}-[0-9a-f]{8}\.bhx")
MAX_MANIFEST_BYTES = 1 << 26   # 64 MiB: some 300,000 shards
SHA256 = re.compile(r"[0-9a-f]{64}")


# hyperparameters declared after shard format 1: in the model digest only where they differ
# from the value files saved before them imply, so the digests of those files stay the same
PARAMS_SINCE_FORMAT_1 = ("projection", "length_byte")


def shard_file(serial: int) -> str:
    """A new shard file name: its serial number, and a random tag so that two writers
    (one of which will fail to commit) never write the same file."""
    return f"shard-{serial:06d}-{secrets.token_hex(4)}.bhx"


def model_digest(state: IndexState) -> str:
    """sha256 of what every shard of one index must share: the model's hyperparameters and
    weights, and the storage kind and settings (for IVF, its nlist, nprobe, centroids and
    router)."""
    storage = state.storage
    params = dataclasses.asdict(state.params)
    for name in PARAMS_SINCE_FORMAT_1:   # at what older files imply: left out, as they were
        if params[name] == ADDED_PARAMS[name]:
            del params[name]
    h = hashlib.sha256()
    h.update(json.dumps(params, sort_keys=True).encode())
    h.update(json.dumps([storage.kind, storage.code_size]).encode())
    for a in (state.mean, state.weights):
        h.update(np.ascontiguousarray(a, np.float32).tobytes())
    if state.length_levels is not None:
        h.update(state.length_levels.tobytes())
    if storage.kind == "ivf":
        h.update(json.dumps([storage.nlist, storage.nprobe]).encode())
        quantizer = faiss.downcast_IndexBinary(storage.index.quantizer)
        h.update(faiss.vector_to_array(quantizer.xb).tobytes())
    if storage.routes:   # every shard routes with the template's units
        router = storage.router
        h.update(json.dumps([router.kind, router.assign]).encode())
        for a in (router.mean_, router.units_, router.bias_):
            h.update(np.ascontiguousarray(a, np.float32).tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------------- shard files
def write_shard(state: IndexState, root, name: str) -> dict:
    """Save an index's state as the file ``root/name`` (atomically); returns its manifest
    entry."""
    data = serialize_state(state)
    write_bytes_atomic(data, Path(root) / name)
    ids = state.storage.ids()
    return {"file": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "ntotal": int(state.storage.ntotal), "min_id": int(ids.min()) if len(ids) else None,
            "max_id": int(ids.max()) if len(ids) else None}


def read_shard(root, entry: dict, digest: str) -> IndexState:
    """The state of the shard of manifest ``entry``, loaded after checking its size and
    sha256, then checked to have the model digest ``digest`` and the entry's ntotal;
    BioHashFormatError naming the file otherwise."""
    path = Path(root) / entry["file"]
    data = read_regular_file(path, size=entry["size"])
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise BioHashFormatError(f"{path}: sha256 checksum differs from the manifest's "
                                 "(damaged, or rebuilt since the manifest was written)")
    state = deserialize_state(data, str(path))
    if model_digest(state) != digest:
        raise BioHashFormatError(f"{path}: built with another model or storage than the "
                                 f"sharded index (model digest {model_digest(state)[:12]}..., "
                                 f"expected {digest[:12]}...)")
    if "ntotal" in entry and state.storage.ntotal != entry["ntotal"]:
        raise BioHashFormatError(f"{path}: holds {state.storage.ntotal} vectors, the manifest "
                                 f"says {entry['ntotal']}")
    return state


# ---------------------------------------------------------------------- manifest
def new_manifest(template: IndexState, template_entry: dict) -> dict:
    return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "version": 0,
            "changes": [_change_token()], "model_digest": model_digest(template),
            "next_id": 0, "next_serial": 0,
            "template": {k: template_entry[k] for k in ("file", "size", "sha256")},
            "shards": []}


def next_manifest(manifest: dict, shards: list[dict], next_serial: int) -> dict:
    """The manifest after a change to ``manifest``: its shards, next serial number and
    next id, the next version, and a new change token (``commit`` knows its own by it)."""
    next_id = max([manifest["next_id"], *(e["max_id"] + 1 for e in shards)])
    return {**manifest, "format_version": FORMAT_VERSION, "version": manifest["version"] + 1,
            "changes": ([*manifest.get("changes", []), _change_token()])[-HISTORY:],
            "shards": shards, "next_serial": next_serial, "next_id": next_id}


def _change_token() -> str:
    return secrets.token_hex(8)


def create(root, template: IndexState) -> dict:
    """Make ``root`` (absent or an empty directory) a sharded index without shards, whose
    template is the state of a trained, empty index; returns its manifest."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise ValueError(f"directory {str(root)!r} is not empty: a new sharded index needs an "
                         "empty or new directory (ShardedIndex.open reopens an existing one)")
    manifest = new_manifest(template, write_shard(template, root, TEMPLATE))
    publish_new_file(_encode(manifest), root / version_file(0))
    return manifest


def commit(root, manifest: dict) -> None:
    """Make ``manifest`` (from ``next_manifest``) the current manifest of ``root``: the commit
    point of a change, a compare-and-swap. Its version file is created exclusively, so of two
    changes made on the same version one commits and the other raises RuntimeError (reopen
    the index and try again); nothing is ever committed over a change it did not see.

    Idempotent: a call that finds its own change committed (a task Dask runs again after
    its worker died) returns. Then the older manifests are removed (``_tidy``).
    """
    root = Path(root)
    version, change = manifest["version"], manifest["changes"][-1]
    current = read_manifest(root)
    if change not in current["changes"]:
        if current["version"] != version - 1:
            raise _concurrent(root, current, version)
        path = root / version_file(version)
        try:
            publish_new_file(_encode(manifest), path)
        except (FileExistsError, FileNotFoundError):
            # the file is another writer's, or ours if an earlier run of this task made
            # it; or our temporary file was tidied away, by a commit of this version
            pass
        current = read_manifest(root)
        if change not in current["changes"]:
            if current["version"] > version:
                # ``version`` was free only because a newer commit had removed its file:
                # this change was made on a stale manifest, and its file is not current
                _unlink(root, [path.name])
            raise _concurrent(root, current, version)
    _tidy(root, current["version"])


def _concurrent(root: Path, current: dict, version: int) -> RuntimeError:
    return RuntimeError(f"{root}: the sharded index was changed by another writer (its "
                        f"manifest is at version {current['version']}, this change was made on "
                        f"version {version - 1}); nothing was changed: reopen the index "
                        "(ShardedIndex.open) and try again")


def read_manifest(root) -> dict:
    """The current manifest of the sharded index at ``root`` (the version file of the
    highest version, or a format version 1 ``shards.json``), checked; BioHashFormatError
    if it is missing or malformed."""
    root = Path(root)
    if not root.is_dir():
        raise BioHashFormatError(f"{root}: not a sharded index (not a directory)")
    while True:
        versions = _versions(root)
        path = root / (version_file(versions[-1]) if versions else LEGACY_MANIFEST)
        if not versions and not os.path.lexists(path):
            raise BioHashFormatError(f"{root}: not a sharded index (no manifest: neither "
                                     f"shards-<version>.json nor {LEGACY_MANIFEST})")
        try:
            data = read_regular_file(path, limit=MAX_MANIFEST_BYTES)
        except BioHashFormatError:
            if versions and _versions(root)[-1] != versions[-1]:
                continue   # removed by the commit of a newer version meanwhile
            raise
        break
    manifest = parse_json(data, str(path))
    _check_manifest(manifest, path)
    if versions and manifest["version"] != versions[-1]:
        raise BioHashFormatError(f"{path}: holds version {manifest['version']}")
    return {"changes": [], **manifest}


def version_file(version: int) -> str:
    return f"shards-{version:012d}.json"


def _versions(root: Path) -> list[int]:
    """The versions of the manifest files in ``root``, ascending."""
    return sorted(int(m.group(1)) for m in map(VERSION_FILE.fullmatch, os.listdir(root)) if m)


def _tidy(root: Path, version: int) -> None:
    """Remove the manifest files older than ``version``, ``shards.json`` and the temporary
    files of manifests up to ``version`` that killed writers left (best effort)."""
    old = [LEGACY_MANIFEST]
    for name in os.listdir(root):
        if (m := VERSION_FILE.fullmatch(name)) and int(m.group(1)) < version:
            old.append(name)
        elif (m := TEMPORARY.fullmatch(name)) and int(m.group(1)) <= version:
            old.append(name)
    _unlink(root, old)


def _encode(manifest: dict) -> bytes:
    return json.dumps(manifest, indent=1).encode()


def _check_manifest(m, path) -> None:
    def bad(what):
        raise BioHashFormatError(f"{path}: {what}")

    if not isinstance(m, dict) or m.get("format") != FORMAT_NAME:
        bad(f"not a sharded index manifest (format {FORMAT_NAME!r} expected)")
    if m.get("format_version") not in READS_VERSIONS:
        bad(f"format version {m.get('format_version')!r}, this library reads {READS_VERSIONS}")
    if not (isinstance(m.get("changes", []), list)
            and all(isinstance(c, str) for c in m.get("changes", []))):
        bad("changes must be a list of strings")
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


def remove_unlisted(root, names) -> None:
    """Delete the files ``names`` under ``root`` that the current manifest does not list (the
    files of a change that did not commit, or that a committed change replaced); a file
    the manifest lists is never deleted, whatever a caller believes (best effort)."""
    manifest = read_manifest(root)
    listed = {e["file"] for e in [manifest["template"], *manifest["shards"]]}
    _unlink(Path(root), [name for name in names if name not in listed])


def _unlink(root: Path, names) -> None:
    for name in names:
        try:
            os.unlink(root / name)
        except OSError:
            pass
