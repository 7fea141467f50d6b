"""The sharded index's manifests without a cluster: commits are a compare-and-swap (one of two
changes made on one version commits), idempotent, and read format version 1 directories."""
import copy
import json
import os

import pytest

from biohash_index._formats import shards as sm


@pytest.fixture()
def root(tmp_path, trained):
    sm.create(tmp_path / "s", trained._state())
    return tmp_path / "s"


def change(manifest):
    """The next manifest of a change that adds no shard."""
    return sm.next_manifest(manifest, manifest["shards"], manifest["next_serial"] + 1)


def test_of_two_changes_on_one_version_one_commits_and_again_is_a_no_op(root):
    m0 = sm.read_manifest(root)
    a, b = change(m0), change(m0)
    sm.commit(root, a)
    sm.commit(root, a)  # run again (a retried task): its change is there, nothing happens
    with pytest.raises(RuntimeError, match="changed by another writer .* version 1, this "
                                           "change was made on version 0"):
        sm.commit(root, b)
    assert sm.read_manifest(root) == a
    assert sorted(os.listdir(root)) == sorted([sm.TEMPLATE, sm.version_file(1)])


def test_a_change_on_a_version_whose_file_was_removed_does_not_commit(root, monkeypatch):
    """Two changes commit between another's check and its publication, the second removing
    version 1's file: the late change finds version 1 free, publishes it, sees version 2
    is current without it, removes its file and raises."""
    m0 = sm.read_manifest(root)
    late, first = change(m0), change(m0)
    publish = sm.publish_new_file

    def others_commit_first(data, path):
        monkeypatch.setattr(sm, "publish_new_file", publish)
        sm.commit(root, first)
        sm.commit(root, change(first))
        assert not (root / sm.version_file(1)).exists()
        publish(data, path)

    monkeypatch.setattr(sm, "publish_new_file", others_commit_first)
    with pytest.raises(RuntimeError, match="changed by another writer"):
        sm.commit(root, late)
    assert sm.read_manifest(root)["version"] == 2
    assert sorted(os.listdir(root)) == sorted([sm.TEMPLATE, sm.version_file(2)])


def test_a_format_1_directory_is_read_and_upgraded_by_its_next_commit(root):
    m0 = sm.read_manifest(root)
    legacy = {k: v for k, v in m0.items() if k != "changes"}
    legacy.update(format_version=1, version=4)
    (root / sm.LEGACY_MANIFEST).write_text(json.dumps(legacy))
    (root / sm.version_file(0)).unlink()
    assert sm.read_manifest(root) == {**legacy, "changes": []}
    sm.commit(root, change(sm.read_manifest(root)))
    assert sorted(os.listdir(root)) == sorted([sm.TEMPLATE, sm.version_file(5)])
    assert sm.read_manifest(root)["format_version"] == sm.FORMAT_VERSION


def test_cleanup_never_removes_a_listed_file(root, trained, clustered):
    shard = copy.deepcopy(trained)
    shard.add(clustered[0][:10])
    m0 = sm.read_manifest(root)
    entry = sm.write_shard(shard._state(), root, sm.shard_file(0))
    sm.commit(root, sm.next_manifest(m0, [entry], 1))
    sm.remove_unlisted(root, [entry["file"], sm.TEMPLATE, "shard-000009-00000000.bhx"])
    assert sorted(os.listdir(root)) == sorted([sm.TEMPLATE, entry["file"], sm.version_file(1)])
