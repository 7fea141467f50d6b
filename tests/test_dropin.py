"""Script bodies written for faiss.IndexLSH, run unchanged on BioHashIndex; and the
IndexLSH calls whose meaning differs (docs/migrating-from-indexlsh.md).

Only the constructor and the two I/O calls differ between the runs. The bodies assert the
faiss conventions a caller relies on; distances and decoded vectors are each index's own.
"""
import copy
import os
import warnings

import faiss
import numpy as np
import pytest

import biohash_index
from biohash_index import (BioHashFormatError, BioHashIndex, BioHashIndexRefine,
                           SmallTrainingSetWarning, UntrainedIndexWarning, index_factory,
                           read_index, training_rows_needed, write_index)


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
    assert os.path.isfile(path)                          # one file, as faiss writes
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
    I = script(make_index, write_index, read_index, tmp_path / "index.faiss", xb, xb, xq)
    if make_index is not faiss.IndexLSH:                  # learned codes keep clusters together
        assert (labels[I] == labels[:40, None]).mean() > 0.9


def codes_script(make_index, xb):
    """IndexLSH's codes, code size, decoding and added codes; its positional flags."""
    d = xb.shape[1]
    index = make_index(d, 16, True, False)               # rotate_data, train_thresholds
    index.train(xb)
    index.add(xb)
    n, code_size = index.ntotal, index.sa_code_size()
    codes = faiss.vector_to_array(index.codes).reshape(n, code_size)
    np.testing.assert_array_equal(codes, index.sa_encode(xb))     # in the order added
    x = index.sa_decode(codes[:10])
    assert x.shape == (10, d) and x.dtype == np.float32
    np.testing.assert_allclose(index.reconstruct(3), x[3], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(index.reconstruct_n(0, 10), x, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(index.sa_encode(x), codes[:10])  # nbits <= d: exact
    other = make_index(d, 16, True, False)
    other.train(xb)
    other.add_sa_codes(codes[:50])
    assert other.ntotal == 50
    _, I = other.search(xb[:5], 1)
    np.testing.assert_array_equal(I[:, 0], np.arange(5))


@pytest.mark.parametrize("make_index", [faiss.IndexLSH, BioHashIndex],
                         ids=["faiss.IndexLSH", "BioHashIndex"])
def test_codes_script_runs_on_both(make_index, clustered):
    codes_script(make_index, clustered[0])


# ---------------------------------------------------------------- IndexLSH's signature
def test_index_lsh_positional_flags_are_accepted_and_ignored():
    plain = BioHashIndex(32, 16).params
    for flags in [(False,), (True, True), (np.bool_(False), False)]:
        assert BioHashIndex(32, 16, *flags).params == plain
    assert BioHashIndex(32, 16, 64).n_hidden == 64                 # our own third argument
    for args in [(64, True), (True, 0.5)]:
        with pytest.raises(TypeError, match="IndexLSH's flags"):
            BioHashIndex(32, 16, *args)


@pytest.mark.parametrize("name,word", [("rrot", "weights_"), ("rotate_data", "weights_"),
                                       ("thresholds", "mean_"), ("train_thresholds", "mean_")])
def test_index_lsh_attributes_say_what_to_use(name, word):
    with pytest.raises(AttributeError, match=f"{name}.*IndexLSH.*{word}"):
        getattr(BioHashIndex(32, 16), name)
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        BioHashIndex(32, 16).nonsense


# ---------------------------------------------------------------- codes, decoding
def test_codes_and_id_map_agree_after_removals(clustered):
    xb = clustered[0]
    for storage in ("flat", "ivf", "inverted"):
        index = BioHashIndex(32, 4, n_hidden=64, task="labels", epochs=2, storage=storage,
                             nlist=4)
        index.train(xb)
        index.add_with_ids(xb, np.arange(600) * 2)
        index.remove_ids(np.arange(0, 400, 6))
        ids = faiss.vector_to_array(index.id_map)
        codes = faiss.vector_to_array(index.codes).reshape(index.ntotal, index.code_size)
        assert len(ids) == index.ntotal == 600 - 67
        np.testing.assert_array_equal(codes, index.sa_encode(xb[ids // 2]))
        np.testing.assert_allclose(index.reconstruct_batch(ids[::-1]),
                                   index.sa_decode(codes[::-1]), rtol=1e-5, atol=1e-6)


def test_reconstruct_takes_ids_as_index_id_map2(clustered):
    """IDMap2's point, reconstruct by id after removals, holds without it."""
    xb = clustered[0]
    index = index_factory(32, "IDMap2,BioHash16")
    index.train(xb)
    index.add(xb)
    before = index.reconstruct(7)
    index.remove_ids(np.array([3, 5]))
    np.testing.assert_allclose(index.reconstruct(7), before, rtol=1e-5, atol=1e-6)
    for call in (lambda: index.reconstruct(3), lambda: index.reconstruct_n(0, 10),
                 lambda: index.reconstruct_batch([1, 5, 2**40])):
        with pytest.raises(ValueError, match="not stored"):
            call()
    with pytest.raises(ValueError, match="key"):
        index.reconstruct(-1)


def test_decoded_vectors_point_where_the_vectors_do(clustered):
    """The decoded vector is the mean plus a unit vector close in angle to x - mean (far
    closer than the decoded vectors of other rows); encoding it gives the code back (half
    the units active, orthonormal rows)."""
    xb = clustered[0]
    index = BioHashIndex(32, 16)
    index.train(xb)
    index.add(xb)
    mean = index.model.mean_
    u = index.reconstruct_n(0, 600) - mean
    cos = np.sum(u * (xb - mean), axis=1) / np.linalg.norm(xb - mean, axis=1)
    np.testing.assert_allclose(np.linalg.norm(u, axis=1), 1, rtol=1e-5)
    other = np.sum(np.roll(u, 1, axis=0) * (xb - mean), axis=1) / np.linalg.norm(xb - mean, axis=1)
    assert cos.min() > 0.5 and abs(other.mean()) < 0.2
    rng = np.random.default_rng(0)
    bits = np.zeros((200, 32), np.uint8)
    for row in bits:
        row[rng.choice(32, 16, replace=False)] = 1
    codes = np.packbits(bits, axis=1, bitorder="little")
    np.testing.assert_array_equal(index.sa_encode(index.sa_decode(codes)), codes)


@pytest.mark.parametrize("bad,exc,word", [
    (lambda c: c.astype(np.int64), TypeError, "uint8"),
    (lambda c: c[:, :3], ValueError, "shape"),
    (lambda c: np.zeros_like(c), ValueError, "exactly 16 bits"),
    (lambda c: c[0], ValueError, "shape"),
], ids=["dtype", "width", "bits", "1-D"])
def test_bad_codes_are_refused(clustered, bad, exc, word):
    xb = clustered[0]
    index = BioHashIndex(32, 16)
    index.train(xb)
    codes = index.sa_encode(xb[:5])
    for call in (index.add_sa_codes, index.sa_decode):
        with pytest.raises(exc, match=word):
            call(bad(codes))
    assert index.ntotal == 0


def test_add_sa_codes_ids_and_untrained(clustered):
    xb = clustered[0]
    index = BioHashIndex(32, 4, n_hidden=30, task="labels", epochs=2)
    with pytest.raises(RuntimeError, match="train"):
        index.add_sa_codes(np.zeros((1, 4), np.uint8))
    index.train(xb)
    codes = index.sa_encode(xb)
    codes[0, 3] |= 0x80                                   # bit 31 of 30: padding
    with pytest.raises(ValueError, match="past the code's 30 bits"):
        index.add_sa_codes(codes[:1])
    index.add_sa_codes(index.sa_encode(xb[:10]), np.arange(10) + 100)
    index.add_sa_codes(index.sa_encode(xb[10:12]))           # numbered on from 110
    assert index.storage.ids().tolist() == list(range(100, 112))
    with pytest.raises(ValueError, match="already in the index"):
        index.add_sa_codes(index.sa_encode(xb[:1]), [105])
    plain = copy.deepcopy(index)
    plain.reset()
    plain.add_with_ids(xb[:12], np.arange(12) + 100)
    np.testing.assert_array_equal(plain.search(xb[:12], 5)[1], index.search(xb[:12], 5)[1])


# ---------------------------------------------------------------- before training
def test_sa_encode_before_training_uses_the_seeds_initial_weights(clustered):
    xb = clustered[0][:20]
    with pytest.warns(UntrainedIndexWarning, match="initial weights.*seed=3") as caught:
        a = BioHashIndex(32, 16, seed=3).sa_encode(xb)
    assert caught[0].filename == __file__                  # points at the caller
    with pytest.warns(UntrainedIndexWarning):
        b = BioHashIndex(32, 16, seed=3).sa_encode(xb)
        c = BioHashIndex(32, 16, seed=4).sa_encode(xb)
        x = BioHashIndex(32, 16, seed=3).sa_decode(a)
    np.testing.assert_array_equal(a, b)
    assert (a != c).any() and x.shape == (20, 32)
    assert (np.unpackbits(a, axis=1).sum(axis=1) == 16).all()
    with pytest.raises(RuntimeError, match='init="sample"'):
        BioHashIndex(32, 4, task="labels").sa_encode(xb)
    trained = BioHashIndex(32, 16, seed=3)
    trained.train(clustered[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trained.sa_encode(xb)


def test_first_add_warns_when_the_batch_is_too_small(clustered):
    xb = clustered[0]
    needed = training_rows_needed(BioHashIndex(32, 16).params)
    assert needed > len(xb)                  # the fixture is smaller than the default needs
    index = BioHashIndex(32, 16)
    with pytest.warns(SmallTrainingSetWarning, match=f"600 vectors, fewer than the {needed}"):
        index.add(xb)
    assert index.is_trained and index.ntotal == 600
    big = np.concatenate([xb] * (needed // len(xb) + 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        BioHashIndex(32, 16).add(big)                    # enough rows: no warning
        BioHashIndex(32, 16).train(xb[:5])               # an explicit train: the user's choice


def test_training_rows_needed_follows_what_training_learns():
    mean_only = BioHashIndex(32, 16).params
    rule = BioHashIndex(32, 16, task="labels").params
    assert mean_only.epochs == 0 and rule.epochs is None
    assert training_rows_needed(rule) > training_rows_needed(mean_only) > 1
    wide = BioHashIndex(32, 16, n_hidden=50_000, task="labels").params
    assert training_rows_needed(wide) == 50_000            # one row per unit to start from
    assert training_rows_needed(rule.replace(init="gaussian", n_hidden=50_000)) == \
        training_rows_needed(rule)


# ---------------------------------------------------------------- write_index and read_index
@pytest.mark.parametrize("name,prepare,form", [
    ("index.faiss", None, "file"),
    ("sift.index", None, "file"),
    ("index", None, "dir"),
    ("index.d/", None, "dir"),
    ("made.index", os.mkdir, "dir"),
    ("tmpfile", lambda p: open(p, "wb").close(), "file"),   # as tempfile.mkstemp leaves it
], ids=["suffix", "index-suffix", "no-suffix", "separator", "existing-dir", "empty-file"])
def test_write_index_file_or_directory(trained, clustered, tmp_path, name, prepare, form):
    index = copy.deepcopy(trained)
    index.add(clustered[0][:50])
    path = str(tmp_path / name) + ("/" if name.endswith("/") else "")
    if prepare:
        prepare(path)
    write_index(index, path)
    assert (os.path.isfile if form == "file" else os.path.isdir)(path)
    index.add(clustered[0][50:60])
    write_index(index, path)                                 # replaces the saved index
    loaded = read_index(path)
    assert loaded.ntotal == 60
    np.testing.assert_array_equal(loaded.search(clustered[0][:5], 3)[1],
                                  index.search(clustered[0][:5], 3)[1])


def test_write_index_file_refuses_what_is_not_an_index_file(trained, tmp_path):
    precious = tmp_path / "notes.txt"
    precious.write_bytes(b"precious")
    with pytest.raises(ValueError, match="not a directory nor a saved index file"):
        write_index(trained, precious)
    with pytest.raises(BioHashFormatError, match="notes.txt: not a saved index file"):
        read_index(precious)
    assert precious.read_bytes() == b"precious"
    saved = tmp_path / "index.faiss"
    write_index(trained, saved)
    link = tmp_path / "link.faiss"
    link.symlink_to(saved)
    with pytest.raises(ValueError, match="refusing"):
        write_index(trained, link)
    with pytest.raises(BioHashFormatError, match="symbolic link"):
        read_index(link)
    saved.write_bytes(saved.read_bytes()[:len(saved.read_bytes()) // 2])
    with pytest.raises(BioHashFormatError, match="index.faiss"):
        read_index(saved)
    with pytest.raises(TypeError, match="write_index_refine"):
        write_index(BioHashIndexRefine(copy.deepcopy(trained)), tmp_path / "r.faiss")
