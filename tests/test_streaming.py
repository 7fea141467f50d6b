"""Streaming sources: training and adding from arrays, block iterables, Arrow and Parquet."""
import copy
import tracemalloc

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from biohash_index._subspace import subspace_passes
from biohash_index import BioHashIndex
from biohash_index._streaming import arrow_vectors, vector_blocks

D = 32


def make_index(**kw):
    return BioHashIndex(D, 4, n_hidden=64, epochs=3, **kw)


def embedding_table(x, ids=None, list_type=None):
    col = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), x.shape[1])
    if list_type is not None:
        col = col.cast(list_type)
    cols = {"embedding": col}
    if ids is not None:
        cols["id"] = pa.array(ids)
    return pa.table(cols)


def write_parquet(tmp_path, x, ids=None, files=2, row_group_size=100):
    """x split over ``files`` Parquet files in a directory, in row order."""
    folder = tmp_path / "emb"
    folder.mkdir()
    table = embedding_table(x, ids)
    step = -(-len(x) // files)
    for f in range(files):
        pq.write_table(table.slice(f * step, step), folder / f"part-{f}.parquet",
                       row_group_size=row_group_size)
    return folder


def test_single_block_array_trains_like_train(clustered):
    xb = clustered[0]
    ref, index = make_index(), make_index()
    ref.train(xb)
    index.train_from(xb, batch_size=len(xb))
    np.testing.assert_array_equal(index.model.weights_, ref.model.weights_)
    np.testing.assert_array_equal(index.model.mean_, ref.model.mean_)


def test_parquet_dataset_trains_like_the_same_blocks_in_memory(clustered, tmp_path):
    xb = clustered[0]
    folder = write_parquet(tmp_path, xb, files=2, row_group_size=100)
    from_disk, in_memory = make_index(), make_index()
    from_disk.train_from(folder, batch_size=100)
    in_memory.train_from([xb[s:s + 100] for s in range(0, len(xb), 100)])
    np.testing.assert_array_equal(from_disk.model.weights_, in_memory.model.weights_)
    # and the model learned something: codes separate the clusters better than chance
    from_disk.add_from(folder)
    _, I = from_disk.search(xb[:50], 10)
    labels = clustered[1]
    assert (labels[I] == labels[:50, None]).mean() > 0.8


def test_training_reads_one_pass_per_epoch_plus_one():
    rng = np.random.default_rng(1)
    blocks = [rng.standard_normal((70, D)).astype(np.float32) for _ in range(4)]
    calls = []

    def source():
        calls.append(1)
        return iter(blocks)
    make_index(projection="random").train_from(source)
    assert len(calls) == 1 + 3
    index = make_index(storage="ivf", nlist=4, projection="random")
    calls.clear()
    index.train_from(source)
    assert len(calls) == 1 + 3 + 1  # one more pass samples codes for the IVF clusters
    calls.clear()
    make_index().train_from(source)   # the learned projection: the passes of Sanger's rule
    assert len(calls) == 1 + subspace_passes(280, D, D)[0] + 3
    assert index.is_trained


def test_one_shot_iterator_cannot_train_but_can_add(clustered):
    xb = clustered[0]
    index = make_index()
    with pytest.raises(TypeError, match="one-shot iterator"):
        index.train_from(iter([xb]))
    index.train(xb)
    gen = (xb[s:s + 64] for s in range(0, len(xb), 64))
    assert index.add_from(gen) == len(xb)
    ref = make_index()
    ref.train(xb)
    ref.add(xb)
    np.testing.assert_array_equal(index.search(xb[:20], 5)[1], ref.search(xb[:20], 5)[1])
    table = embedding_table(xb)
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=100))
    with pytest.raises(TypeError, match="one-shot iterator"):
        make_index().train_from(reader)
    assert index.add_from(reader) == len(xb)


def test_one_shot_iterator_refuses_a_second_pass(clustered):
    passes = vector_blocks(iter([clustered[0]]), D)
    assert sum(len(x) for x in passes()) == len(clustered[0])
    with pytest.raises(RuntimeError, match="already read"):
        next(passes())


def test_add_from_parquet_with_ids_matches_add_with_ids(trained, clustered, tmp_path):
    xb = clustered[0]
    ids = np.arange(len(xb), dtype=np.int64) * 7 + 3
    folder = write_parquet(tmp_path, xb, ids, files=3)
    index, ref = copy.deepcopy(trained), copy.deepcopy(trained)
    assert index.add_from(ds.dataset(folder), ids_column="id", batch_size=64) == len(xb)
    ref.add_with_ids(xb, ids)
    np.testing.assert_array_equal(np.sort(index.storage.ids()), np.sort(ids))
    Dq, Iq = index.search(xb[:30], 8)
    Dr, Ir = ref.search(xb[:30], 8)
    np.testing.assert_array_equal(Dq, Dr)
    np.testing.assert_array_equal(np.sort(Iq, axis=1), np.sort(Ir, axis=1))


@pytest.mark.parametrize("list_type", [pa.list_(pa.float32()), pa.list_(pa.float64()),
                                       pa.large_list(pa.float32())])
def test_list_columns_are_cast(clustered, list_type):
    xb = clustered[0][:50]
    table = embedding_table(xb, list_type=list_type)
    np.testing.assert_array_equal(arrow_vectors(table["embedding"], D, "e"), xb)


def test_sliced_arrow_batches_read_the_right_rows(clustered, trained):
    xb = clustered[0]
    table = embedding_table(xb)
    index = copy.deepcopy(trained)
    index.add_from(table.slice(100, 300).to_batches(max_chunksize=70))
    np.testing.assert_array_equal(index.storage.codes(), trained.sa_encode(xb[100:400]))


def test_arrow_ipc_file(clustered, trained, tmp_path):
    xb = clustered[0]
    path = tmp_path / "emb.arrow"
    with pa.ipc.new_file(path, embedding_table(xb).schema) as writer:
        writer.write_table(embedding_table(xb), max_chunksize=128)
    index = copy.deepcopy(trained)
    assert index.add_from(str(path)) == len(xb)


def streaming_peak(folder, n, projection) -> int:
    """Peak bytes numpy allocates to train from and add the n vectors in folder."""
    index = BioHashIndex(D, 4, n_hidden=64, epochs=1, projection=projection)
    tracemalloc.start()
    index.train_from(folder, batch_size=1000)
    index.add_from(folder, batch_size=1000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert index.ntotal == n
    return peak


@pytest.mark.parametrize("projection, bound", [("random", 4), ("learned", 2)])
def test_memory_is_bounded_by_the_batch_size(tmp_path, projection, bound):
    """Training from Parquet allocates a few blocks and fixed-size samples (the initial
    weights', the centring check's; with the learned projection, the held-out check's and
    the rotation's copies of it too), not the data set (numpy side): four times the data
    takes no more memory."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((160_000, D)).astype(np.float32)  # 20 MB
    (tmp_path / "small").mkdir()
    (tmp_path / "large").mkdir()
    small = write_parquet(tmp_path / "small", x[:40_000], files=4, row_group_size=1000)
    large = write_parquet(tmp_path / "large", x, files=4, row_group_size=1000)
    streaming_peak(small, 40_000, projection)   # numba loads its kernels here, not below
    peak_small = streaming_peak(small, 40_000, projection)
    peak_large = streaming_peak(large, len(x), projection)
    assert peak_large < 1.1 * peak_small, f"peak {peak_large} bytes, {peak_small} for 1/4"
    assert peak_large < x.nbytes / bound, f"peak {peak_large} bytes for {x.nbytes} bytes"


def test_bad_sources_and_columns_raise_clear_errors(clustered, trained, tmp_path):
    xb = clustered[0]
    index = copy.deepcopy(trained)
    with pytest.raises(ValueError, match="32 columns"):
        index.add_from([xb[:, :10]])
    with pytest.raises(ValueError, match="hold 32 values"):
        index.add_from(embedding_table(xb[:, :10]))
    ragged = pa.table({"embedding": pa.array([[1.0] * D, [1.0] * 3])})
    with pytest.raises(ValueError, match="another length"):
        index.add_from(ragged)
    with pytest.raises(ValueError, match="null rows"):
        index.add_from(pa.table({"embedding": pa.array([[1.0] * D, None])}))
    with pytest.raises(TypeError, match="FixedSizeList"):
        index.add_from(pa.table({"embedding": pa.array([["a"] * D])}), column="embedding")
    with pytest.raises(ValueError, match="column 'vec' is not in the data"):
        index.add_from(embedding_table(xb), column="vec")
    two = embedding_table(xb).append_column("other", embedding_table(xb)["embedding"])
    with pytest.raises(ValueError, match="pass column="):
        index.add_from(two)
    with pytest.raises(ValueError, match="ids_column"):
        index.add_from([xb], ids_column="id")
    with pytest.raises(ValueError, match="NaN"):
        index.add_from([np.full((2, D), np.nan)])
    with pytest.raises(TypeError, match="iterable of arrays"):
        index.add_from(lambda: 3)
    with pytest.raises(ValueError, match="batch_size"):
        index.add_from(xb, batch_size=0)
    with pytest.raises(ValueError, match="no vectors"):
        make_index().train_from([])


def test_failed_ivf_training_from_a_stream_leaves_the_index_untrained():
    rng = np.random.default_rng(3)
    xb = rng.standard_normal((50, 16)).astype(np.float32)
    index = BioHashIndex(16, 4, n_hidden=40, epochs=2, storage="ivf", nlist=100)
    with pytest.raises(ValueError, match="nlist"):
        index.train_from([xb[:25], xb[25:]])
    assert not index.is_trained and index.model.weights_ is None
