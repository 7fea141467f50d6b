"""Dask scale-out on a distributed.LocalCluster: encode, sample training, shards from Parquet.

The sharded index on a real cluster (scheduler and workers as processes): test_dask_cluster.py.
"""
import copy

import pytest

pytest.importorskip("dask.dataframe")
pytest.importorskip("distributed")

import dask.array as da  # noqa: E402
import dask.dataframe as dd  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402

from biohash_index import BioHashIndex  # noqa: E402
from biohash_index import dask as bhd  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword")  # dask vs pandas 3


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as c:
        yield c


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


def test_shards_from_parquet_keep_the_ids_column(client, clustered, trained, tmp_path):
    xb = clustered[0]
    ids = np.arange(len(xb), dtype=np.int64) * 10 + 1
    frame = dd.read_parquet(write_parquet(tmp_path / "emb", xb, ids, files=4))
    sharded = bhd.build_shards(trained, frame, tmp_path / "shards", client, ids_column="id")
    assert sharded.ntotal_per_shard == [150] * 4
    single = copy.deepcopy(trained)
    single.add_with_ids(xb, ids)
    D, I = sharded.search(xb[:25], 600)  # k > ntotal: -1 at the end
    Dref, Iref = single.search(xb[:25], 600)
    np.testing.assert_array_equal(I, Iref)
    np.testing.assert_array_equal(D, Dref)
    # without ids_column the ids are the row numbers over all partitions
    rows = bhd.build_shards(trained, frame, tmp_path / "rows", client)
    _, I = rows.search(xb[:25], 600)
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
    sharded = bhd.build_shards(trained, x[:200], tmp_path / "a", client)
    with pytest.raises(ValueError, match="not empty"):
        bhd.build_shards(trained, x[:200], tmp_path / "a", client)
    with pytest.raises(ValueError, match="32 columns"):
        sharded.search(xb[:, :3], 5)
    with pytest.raises(ValueError, match="k must be"):
        sharded.search(xb, 0)
