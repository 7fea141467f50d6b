"""Dask scale-out on a distributed.LocalCluster: encode, sample training, shards, sharded search."""
import copy

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from distributed import Client, LocalCluster

from biohash_index import BioHashIndex, read_index
from biohash_index import dask as bhd
from biohash_index.datasets import read_fvecs
from biohash_index.topk import search_ordered

from .conftest import data_path

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword")  # dask vs pandas 3


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def sift():
    """The first 4000 siftsmall base vectors and 40 queries."""
    folder = data_path("siftsmall")
    return (read_fvecs(folder / "siftsmall_base.fvecs")[:4000],
            read_fvecs(folder / "siftsmall_query.fvecs")[:40])


def write_parquet(folder, x, ids, files=3):
    folder.mkdir()
    table = pa.table({"id": ids, "embedding": pa.FixedSizeListArray.from_arrays(
        pa.array(x.ravel()), x.shape[1])})
    step = -(-len(x) // files)
    for f in range(files):
        pq.write_table(table.slice(f * step, step), folder / f"part-{f}.parquet")
    return folder


def test_encode_array_and_dataframe_match_local_encoding(client, trained, clustered, tmp_path):
    xb = clustered[0]
    expected = trained.sa_encode(xb)
    codes = bhd.encode(trained, da.from_array(xb, chunks=(128, 16)))  # chunks split columns too
    assert codes.dtype == np.uint8 and codes.numblocks == (5, 1)
    np.testing.assert_array_equal(codes.compute(), expected)
    folder = write_parquet(tmp_path / "emb", xb, np.arange(len(xb)))
    frame = dd.read_parquet(folder)
    np.testing.assert_array_equal(bhd.encode(trained.model, frame).compute(), expected)
    np.testing.assert_array_equal(bhd.encode(trained, frame["embedding"]).compute(), expected)
    first_empty = frame[frame["id"] >= 200]  # partition 0 holds ids 0..199
    np.testing.assert_array_equal(bhd.encode(trained, first_empty).compute(), expected[200:])


def test_train_on_sample_trains_on_the_drawn_rows(client, clustered):
    xb = clustered[0]
    index = BioHashIndex(32, 4, n_hidden=64, epochs=3)
    assert bhd.train_on_sample(index, da.from_array(xb, chunks=(77, 32)), 250, seed=5) == 250
    rows = np.sort(np.random.default_rng(5).choice(len(xb), 250, replace=False))
    ref = BioHashIndex(32, 4, n_hidden=64, epochs=3)
    ref.train(xb[rows])
    np.testing.assert_array_equal(index.model.weights_, ref.model.weights_)


@pytest.mark.parametrize("storage", ["flat", "ivf"])
def test_sharded_search_equals_one_index(client, sift, tmp_path, storage):
    xb, xq = sift
    template = BioHashIndex(128, 8, n_hidden=160, epochs=2, storage=storage, nlist=16, nprobe=4)
    bhd.train_on_sample(template, da.from_array(xb, chunks=1000), 2000)
    single = copy.deepcopy(template)
    single.add(xb)

    paths = bhd.build_shards(template, da.from_array(xb, chunks=(700, 64)), tmp_path / "shards")
    assert len(paths) == 6
    assert read_index(paths[1]).ntotal == 700  # saved in the package's format
    sharded = bhd.ShardedIndex(paths, client)
    assert sharded.ntotal == len(xb) and sharded.ntotal_per_shard[-1] == 500
    k = 50
    D, I = sharded.search(xq, k)
    Dref, Iref = search_ordered(single.storage, single.sa_encode(xq), k)
    np.testing.assert_array_equal(I, Iref)  # ties at equal distance in id order on both sides
    np.testing.assert_array_equal(D, Dref)
    np.testing.assert_array_equal(D, single.search(xq, k)[0])  # the same distances as faiss
    sharded.close()


def test_shards_from_parquet_keep_the_ids_column(client, clustered, trained, tmp_path):
    xb = clustered[0]
    ids = np.arange(len(xb), dtype=np.int64) * 10 + 1
    frame = dd.read_parquet(write_parquet(tmp_path / "emb", xb, ids, files=4))
    template = copy.deepcopy(trained)
    paths = bhd.build_shards(template, frame, tmp_path / "shards", ids_column="id")
    assert len(paths) == 4
    single = copy.deepcopy(trained)
    single.add_with_ids(xb, ids)
    D, I = bhd.ShardedIndex(paths, client).search(xb[:25], 600)  # k > ntotal: -1 at the end
    Dref, Iref = search_ordered(single.storage, single.sa_encode(xb[:25]), 600)
    np.testing.assert_array_equal(I, Iref)
    np.testing.assert_array_equal(D, Dref)
    # without ids_column the ids are the row numbers over all partitions
    paths = bhd.build_shards(template, frame, tmp_path / "rows")
    _, I = bhd.ShardedIndex(paths, client).search(xb[:25], 600)
    np.testing.assert_array_equal(I, (Iref - 1) // 10)


def test_bad_input_raises(client, clustered, trained, tmp_path):
    xb = clustered[0]
    x = da.from_array(xb, chunks=200)
    filled = copy.deepcopy(trained)
    filled.add(xb[:5])
    with pytest.raises(ValueError, match="trained and empty"):
        bhd.build_shards(filled, x, tmp_path)
    with pytest.raises(ValueError, match=r"shape \(n, 32\)"):
        bhd.encode(trained, x[:, :10])
    with pytest.raises(ValueError, match="ids_column applies to dataframes"):
        bhd.build_shards(trained, x, tmp_path, ids_column="id")
    with pytest.raises(TypeError, match="dask array, dataframe"):
        bhd.encode(trained, xb)
    with pytest.raises(RuntimeError, match="not trained"):
        bhd.encode(BioHashIndex(32, 4), x)
    other = BioHashIndex(32, 4, n_hidden=64, epochs=1, seed=9)
    other.train(xb)
    paths = (bhd.build_shards(trained, x[:200], tmp_path / "a")
             + bhd.build_shards(other, x[:200], tmp_path / "b"))
    with pytest.raises(ValueError, match="different models"):
        bhd.ShardedIndex(paths, client)
    sharded = bhd.ShardedIndex(paths[:1], client)
    with pytest.raises(ValueError, match="32 columns"):
        sharded.search(xb[:, :3], 5)
    with pytest.raises(ValueError, match="k must be"):
        sharded.search(xb, 0)
