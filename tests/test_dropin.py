"""One script body, written for faiss.IndexLSH, run unchanged on BioHashIndex.

Only the constructor and the two I/O calls differ between the runs. The body asserts the
faiss conventions a caller relies on; distances themselves are each index's own.
"""
import faiss
import numpy as np
import pytest

import biohash_index


def script(make_index, write_index, read_index, path, xt, xb, xq):
    """A typical IndexLSH user's code: build, query, persist, shrink, empty."""
    d = xb.shape[1]
    index = make_index(d, 16)
    index.train(xt)
    assert index.is_trained and index.ntotal == 0 and index.d == d
    index.add(xb)
    assert index.ntotal == len(xb)

    D, I = index.search(xq, 10)
    assert D.shape == I.shape == (len(xq), 10) and D.dtype == np.float32 and I.dtype == np.int64
    assert ((I >= 0) & (I < len(xb))).all() and (np.diff(D, axis=1) >= 0).all()
    D0, I0 = index.search(xb[:20], 1)
    assert (D0[:, 0] == 0).all()                         # a stored vector is its own match

    lims, Dr, Ir = index.range_search(xq, float(D[:, 4].max()) + 1)
    assert lims.shape == (len(xq) + 1,) and lims[0] == 0 and (np.diff(lims) >= 0).all()
    assert len(Dr) == len(Ir) == lims[-1] and Dr.dtype == np.float32 and Ir.dtype == np.int64

    write_index(index, str(path))
    index2 = read_index(str(path))
    assert index2.ntotal == index.ntotal
    D2, I2 = index2.search(xq, 10)
    np.testing.assert_array_equal(D2, D)
    np.testing.assert_array_equal(I2, I)

    n_removed = index.remove_ids(np.arange(len(xb) - 50, len(xb), dtype=np.int64))
    assert n_removed == 50 and index.ntotal == len(xb) - 50
    _, I3 = index.search(xq, 10)
    assert (I3 < len(xb) - 50).all()

    index.reset()
    assert index.ntotal == 0
    index.add(xb[:5])
    _, I4 = index.search(xb[:5], 1)
    assert set(I4[:, 0]) <= set(range(5))
    return I


@pytest.mark.parametrize("make_index,write_index,read_index", [
    (faiss.IndexLSH, faiss.write_index, faiss.read_index),
    (lambda d, nbits: biohash_index.BioHashIndex(d, nbits, epochs=20),    # epochs: test speed
     biohash_index.write_index, biohash_index.read_index),
], ids=["faiss.IndexLSH", "BioHashIndex"])
def test_same_script_runs_on_both(make_index, write_index, read_index, tmp_path, clustered):
    xb, labels = clustered
    xb = xb[:300]
    xq = xb[:40] + 0.3
    I = script(make_index, write_index, read_index, tmp_path / "index", xb, xb, xq)
    if make_index is not faiss.IndexLSH:                  # learned codes keep clusters together
        assert (labels[I] == labels[:40, None]).mean() > 0.9
