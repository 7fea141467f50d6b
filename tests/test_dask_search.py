"""How a sharded search runs on the cluster: the shards stay where they are loaded (Dask knows
their size), and IVF shards take nprobe per call as one index does."""
import copy

import numpy as np
import pytest

pytest.importorskip("distributed")

import dask.array as da  # noqa: E402
from dask.sizeof import sizeof  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402

from biohash_index import BioHashIndex  # noqa: E402
from biohash_index import dask as bhd  # noqa: E402


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as c:
        yield c


def test_dask_takes_a_shard_for_its_codes_and_ids(trained, clustered):
    """Without it Dask took a shard for 56 bytes and ran a search task where the queries
    were, copying the shard there."""
    index = copy.deepcopy(trained)
    index.add(clustered[0])
    assert sizeof(index) >= index.ntotal * (index.code_size + 8)


def test_searches_and_adds_never_copy_a_shard(client, clustered, trained, tmp_path):
    xb = clustered[0]
    sharded = bhd.build_shards(trained, da.from_array(xb, chunks=100), tmp_path / "s", client)
    gone = np.array([5, 150, 250, 350])
    sharded.remove_ids(gone)
    sharded.add_with_ids(xb[gone], gone)   # id ranges overlap: checked against the shards
    single = copy.deepcopy(trained)
    single.add(xb)
    for _ in range(3):
        for got, want in zip(sharded.search(xb[:50] + 0.1, 10), single.search(xb[:50] + 0.1, 10)):
            np.testing.assert_array_equal(got, want)
    holders = client.who_has(sharded.shards_)
    assert len({w for h in holders.values() for w in h}) == 2   # spread over both workers
    assert all(len(h) == 1 for h in holders.values()), holders  # each shard on one only
    sharded.close()


def test_sharded_ivf_search_takes_nprobe_per_call(client, clustered, tmp_path):
    xb = clustered[0]
    xq = xb[:40] + 0.1
    template = BioHashIndex(32, 4, n_hidden=64, storage="ivf", nlist=8, nprobe=1)
    template.train(xb)
    sharded = bhd.build_shards(template, da.from_array(xb, chunks=200), tmp_path / "s", client)
    single = copy.deepcopy(template)
    single.add(xb)
    answers = []
    for params in (None, {"nprobe": 3}, {"nprobe": 8}, {"nprobe": 8, "shortlist": 12}):
        D, I = sharded.search(xq, 10, params=params)
        Dref, Iref = single.search(xq, 10, params=params)
        np.testing.assert_array_equal(I, Iref)
        np.testing.assert_array_equal(D, Dref)
        answers.append(I)
    assert not np.array_equal(answers[0], answers[2])   # the lists probed changed
    with pytest.raises(ValueError, match="takes nprobe and shortlist only"):
        sharded.search(xq, 5, params={"max_codes": 100})
    flat_template = BioHashIndex(32, 4, n_hidden=64)
    flat_template.train(xb)
    flat = bhd.build_shards(flat_template, da.from_array(xb, chunks=300), tmp_path / "f", client)
    with pytest.raises(ValueError, match="storage='ivf' only"):
        flat.search(xq, 5, params={"nprobe": 2})
    sharded.close()
    flat.close()

