"""Retrieval metrics against hand-computed values, and the benchmark file readers."""
import gzip

import faiss
import numpy as np
import pytest

from biohash_index.datasets import (label_split, load_ann, read_bvecs, read_fvecs, read_idx,
                                    read_ivecs)
from biohash_index.evaluation import (average_precisions, mean_average_precision,
                                      precision_at_k, recall_at_k)

from .conftest import data_path

DB_LABELS = np.array([0, 1, 0, 1, 1])  # two items of class 0, three of class 1


def test_ap_all_by_hand():
    I = np.array([[0, 1, 2, 3, 4],    # class 0: relevant at ranks 1, 3 -> (1 + 2/3) / 2
                  [0, 2, 1, 3, 4]])   # class 1: relevant at ranks 3, 4, 5 -> (1/3+1/2+3/5)/3
    ap = average_precisions(I, DB_LABELS, np.array([0, 1]))
    np.testing.assert_allclose(ap, [(1 + 2 / 3) / 2, (1 / 3 + 2 / 4 + 3 / 5) / 3])
    assert mean_average_precision(I, DB_LABELS, np.array([0, 1])) == pytest.approx(ap.mean())


def test_ap_all_counts_unretrieved_items_and_missing_results():
    # only the top 2 returned (and one -1): the other relevant items are never retrieved
    I = np.array([[0, -1]])
    assert average_precisions(I, DB_LABELS, np.array([0]))[0] == pytest.approx(0.5)
    # a label absent from the database gives AP 0, not a division by zero
    assert average_precisions(np.array([[0, 1]]), DB_LABELS, np.array([7]))[0] == 0.0


def test_map_at_r():
    I = np.array([[1, 0, 2, 3, 4]])  # class 0: top 3 hold relevant items at ranks 2, 3
    ap = average_precisions(I, DB_LABELS, np.array([0]), R=3)
    assert ap[0] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert average_precisions(I, DB_LABELS, np.array([0]), R=1)[0] == 0.0


def test_perfect_and_reversed_rankings():
    rng = np.random.default_rng(0)
    db = rng.integers(0, 4, 200)
    q = np.arange(4)
    perfect = np.stack([np.argsort(db != c, kind="stable") for c in q])
    assert mean_average_precision(perfect, db, q) == pytest.approx(1.0)
    worst = perfect[:, ::-1]
    assert mean_average_precision(worst, db, q) < 0.5


def test_precision_at_k():
    I = np.array([[0, 1, 2], [1, 3, -1]])
    q = np.array([0, 1])
    assert precision_at_k(I, DB_LABELS, q, 2) == pytest.approx((1 / 2 + 2 / 2) / 2)
    assert precision_at_k(I, DB_LABELS, q, 3) == pytest.approx((2 / 3 + 2 / 3) / 2)


def test_recall_at_k():
    gt = np.array([[5, 6, 7, 8], [1, 2, 3, 4]])
    I = np.array([[7, 5, 9, -1], [4, 3, 2, 1]])
    assert recall_at_k(I, gt, 2) == pytest.approx((1 / 2 + 0 / 2) / 2)
    assert recall_at_k(I, gt, 4) == pytest.approx((2 / 4 + 4 / 4) / 2)
    assert recall_at_k(gt, gt, 3) == 1.0


def test_recall_of_exact_faiss_search_is_one():
    rng = np.random.default_rng(1)
    xb = rng.standard_normal((300, 8)).astype(np.float32)
    xq = rng.standard_normal((20, 8)).astype(np.float32)
    gt = np.argsort(((xq[:, None] - xb[None]) ** 2).sum(-1), axis=1)[:, :10]
    index = faiss.IndexFlatL2(8)
    index.add(xb)
    _, I = index.search(xq, 10)
    assert recall_at_k(I, gt, 10) == 1.0


@pytest.mark.parametrize("call", [
    lambda: average_precisions(np.array([0, 1]), DB_LABELS, np.array([0])),
    lambda: average_precisions(np.array([[0.5, 1]]), DB_LABELS, np.array([0])),
    lambda: average_precisions(np.array([[0, 1]]), DB_LABELS, np.array([0, 1])),
    lambda: average_precisions(np.array([[0, 9]]), DB_LABELS, np.array([0])),
    lambda: average_precisions(np.array([[0, 1]]), DB_LABELS, np.array([0]), R=0),
    lambda: precision_at_k(np.array([[0, 1]]), DB_LABELS, np.array([0]), 0),
    lambda: recall_at_k(np.array([[0, 1]]), np.array([[0, 1], [1, 2]]), 2),
    lambda: recall_at_k(np.array([[0, 1]]), np.array([[0, 1]]), 3),
])
def test_bad_input_raises(call):
    with pytest.raises(ValueError):
        call()


# ---------------------------------------------------------------- file readers
def write_vecs(path, x, dtype):
    x = np.asarray(x, dtype)
    d = np.full((len(x), 1), x.shape[1], np.int32).view(np.uint8)
    np.hstack([d, x.view(np.uint8).reshape(len(x), -1)]).tofile(path)


@pytest.mark.parametrize("reader,dtype,ext", [(read_fvecs, np.float32, "fvecs"),
                                              (read_ivecs, np.int32, "ivecs"),
                                              (read_bvecs, np.uint8, "bvecs")])
def test_vecs_round_trip(tmp_path, reader, dtype, ext):
    x = (np.random.default_rng(0).random((7, 5)) * 200).astype(dtype)
    write_vecs(tmp_path / f"a.{ext}", x, dtype)
    got = reader(tmp_path / f"a.{ext}")
    assert got.dtype == dtype and got.shape == (7, 5)
    np.testing.assert_array_equal(got, x)


def test_vecs_rejects_bad_files(tmp_path):
    write_vecs(tmp_path / "a.fvecs", np.ones((3, 4)), np.float32)
    raw = (tmp_path / "a.fvecs").read_bytes()
    (tmp_path / "cut.fvecs").write_bytes(raw[:-3])
    with pytest.raises(ValueError, match=r"cut.fvecs: not a .fvecs file \(truncated\?\)"):
        read_fvecs(tmp_path / "cut.fvecs")
    mixed = bytearray(raw)
    mixed[20:24] = np.int32(3).tobytes()  # second row claims d = 3
    (tmp_path / "mixed.fvecs").write_bytes(bytes(mixed))
    with pytest.raises(ValueError, match="different dimensions"):
        read_fvecs(tmp_path / "mixed.fvecs")


@pytest.mark.parametrize("reader,ext", [(read_fvecs, "fvecs"), (read_ivecs, "ivecs"),
                                        (read_bvecs, "bvecs")])
@pytest.mark.parametrize("data,message", [
    (b"", "it is empty, less than one vector"),
    (b"abc", "it has 3 bytes, less than one vector"),
    (np.int32(0).tobytes() * 2, "the first vector declares dimension 0, not >= 1"),
    (np.int32(-3).tobytes() * 2, "the first vector declares dimension -3, not >= 1"),
])
def test_vecs_errors_name_the_file_and_the_fault(tmp_path, reader, ext, data, message):
    path = tmp_path / f"bad.{ext}"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=f"bad.{ext}: not a .{ext} file: {message}"):
        reader(path)


def test_vecs_are_memory_mapped(tmp_path):
    write_vecs(tmp_path / "a.fvecs", np.ones((3, 4)), np.float32)
    x = read_fvecs(tmp_path / "a.fvecs")
    assert isinstance(x, np.memmap) and not x.flags.writeable


@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip(tmp_path, compress):
    x = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    data = bytes([0, 0, 0x08, 3]) + np.array(x.shape, ">u4").tobytes() + x.tobytes()
    path = tmp_path / ("x.idx.gz" if compress else "x.idx")
    path.write_bytes(gzip.compress(data) if compress else data)
    np.testing.assert_array_equal(read_idx(path), x)
    path.write_bytes(data[:-1] if not compress else gzip.compress(data[:-1]))
    with pytest.raises(ValueError, match="IDX header"):
        read_idx(path)
    path.write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an IDX"):
        read_idx(path)
    header = data[:10]                                  # 3 dimensions, 1.5 of them present
    path.write_bytes(gzip.compress(header) if compress else header)
    with pytest.raises(ValueError, match=f"{path.name}: truncated IDX header: 3 dimensions "
                                         "need 16 bytes, the file has 10"):
        read_idx(path)


def test_label_split():
    labels = np.repeat(np.arange(3), 10)
    q, db = label_split(labels, 4)
    assert q.tolist() == [0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23]
    assert sorted(np.concatenate([q, db]).tolist()) == list(range(30))
    q1, _ = label_split(labels, 4, seed=1)
    assert np.bincount(labels[q1]).tolist() == [4, 4, 4] and not np.array_equal(q, q1)


@pytest.mark.parametrize("name,d,nq", [("siftsmall", 128, 100), ("bigann10k", 128, 100),
                                       ("fmnistsmall", 784, 500)])
def test_load_ann_real_sets(name, d, nq):
    xb, xq, gt = load_ann(data_path(name))
    assert xb.dtype == xq.dtype == np.float32 and gt.dtype == np.int64
    assert xb.shape[1] == xq.shape[1] == d and len(xq) == nq and gt.shape == (nq, 100)
    # the ground truth is the exact L2 neighbours: check the first few queries
    D = ((xq[:5, None].astype(np.float64) - xb[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(np.sort(D, axis=1)[:, :10],
                                  np.take_along_axis(D, gt[:5, :10], axis=1))
