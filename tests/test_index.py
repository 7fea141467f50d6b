"""BioHashIndex: the faiss IndexLSH API and its conventions."""
import copy
import dataclasses
import inspect

import numpy as np
import pytest

from biohash_index import BioHashIndex, BioHashParams
from biohash_index._model import HYPERPARAMETERS, TASKS, Bool, OneOf

SENTINEL = np.float32(2**31 - 1)


@pytest.fixture
def index(trained):
    return copy.deepcopy(trained)


def hamming(a, b):
    """Hamming distances between every row of a and of b: int (len(a), len(b))."""
    x = np.unpackbits(a, axis=1)[:, None, :] != np.unpackbits(b, axis=1)[None, :, :]
    return x.sum(axis=2)


def test_search_equals_brute_force_hamming(index, clustered):
    xb = clustered[0]
    index.add(xb)
    xq = xb[:40] + 0.5
    D, I = index.search(xq, 25)
    assert D.dtype == np.float32 and I.dtype == np.int64 and D.shape == I.shape == (40, 25)
    H = hamming(index.sa_encode(xq), index.sa_encode(xb))
    np.testing.assert_array_equal(D, np.sort(H, axis=1)[:, :25])
    np.testing.assert_array_equal(H[np.arange(40)[:, None], I], D)   # ids point at those codes
    assert ((D % 2) == 0).all() and D.max() <= 2 * index.hash_length


def test_neighbours_share_clusters(index, clustered):
    xb, labels = clustered
    index.add(xb)
    _, I = index.search(xb[:50], 10)
    assert (labels[I] == labels[:50, None]).mean() > 0.9


def test_add_continues_ids_and_add_with_ids(index, clustered):
    xb = clustered[0]
    index.add(xb[:10])
    index.add(xb[10:20])
    assert index.ntotal == 20
    _, I = index.search(xb[15:16], 1)
    assert I[0, 0] == 15 or index.sa_encode(xb[15:16]).tobytes() == index.sa_encode(
        xb[I[0, 0]:I[0, 0] + 1]).tobytes()
    index.add_with_ids(xb[20:25], np.array([1000, 1001, 1002, 1003, 1004]))
    _, I = index.search(xb[20:25], 1)
    D, _ = index.search(xb[20:25], 1)
    assert (D[:, 0] == 0).all() and set(I[:, 0]) <= set(range(1000, 1005)) | set(range(20))
    index.add(xb[25:26])
    assert index.storage.ids()[-1] == 1005       # next id is past the largest id


def test_remove_ids_keeps_other_ids(index, clustered):
    xb = clustered[0]
    index.add(xb[:30])
    codes = index.sa_encode(xb[:30])
    assert index.remove_ids(np.array([3, 4, 99])) == 2
    assert index.ntotal == 28
    assert index.remove_ids(np.array([3])) == 0
    _, I = index.search(xb[:30], 28)
    assert not np.isin([3, 4], I).any()
    D, I = index.search(xb[10:11], 28)
    H = hamming(codes[10:11], codes)[0]
    np.testing.assert_array_equal(D[0], H[I[0]])    # ids still name the same vectors
    index.add(xb[:1])
    assert index.storage.ids()[-1] == 30


def test_padding_when_fewer_than_k(index, clustered):
    D, I = index.search(clustered[0][:2], 3)
    assert (I == -1).all() and (D == SENTINEL).all()
    index.add(clustered[0][:2])
    D, I = index.search(clustered[0][:2], 5)
    assert (I[:, 2:] == -1).all() and (D[:, 2:] == SENTINEL).all() and (I[:, :2] >= 0).all()


def test_range_search_matches_search(index, clustered):
    xb = clustered[0]
    index.add(xb)
    xq = xb[:20]
    lims, D, I = index.range_search(xq, 4)
    assert len(lims) == 21 and D.dtype == np.float32 and I.dtype == np.int64
    H = hamming(index.sa_encode(xq), index.sa_encode(xb))
    for i in range(20):
        assert set(I[lims[i]:lims[i + 1]]) == set(np.flatnonzero(H[i] < 4))
        assert (D[lims[i]:lims[i + 1]] < 4).all()
    assert index.range_search(xq, 3.5)[0][-1] == lims[-1]   # Hamming distances are integers


def test_float64_and_non_contiguous_input(index, clustered):
    xb = clustered[0]
    index.add(xb[:100].astype(np.float64))
    wide = np.zeros((100, 64), np.float32)
    wide[:, ::2] = xb[:100]
    D1, I1 = index.search(xb[:100], 5)
    D2, I2 = index.search(wide[:, ::2], 5)
    np.testing.assert_array_equal(I1, I2)
    np.testing.assert_array_equal(D1, D2)


def test_reset_keeps_model(index, clustered):
    index.add(clustered[0])
    index.reset()
    assert index.ntotal == 0 and index.is_trained
    index.add(clustered[0][:3])
    assert index.storage.ids().tolist() == [0, 1, 2]


def test_untrained_index_refuses_to_search(clustered):
    """(add trains an untrained index: tests/test_neighbors.py; sa_encode uses the initial
    weights: tests/test_dropin.py)"""
    index = BioHashIndex(32, 4)
    assert not index.is_trained and index.ntotal == 0
    for call in (lambda: index.search(clustered[0], 1),
                 lambda: index.range_search(clustered[0], 2)):
        with pytest.raises(RuntimeError, match="train"):
            call()


def test_properties():
    index = BioHashIndex(784, 16)
    assert (index.d, index.hash_length, index.n_hidden, index.code_size) == (784, 16, 32, 4)
    index = BioHashIndex(784, 16, task="labels")
    assert (index.d, index.hash_length, index.n_hidden, index.code_size) == (784, 16, 320, 40)
    assert BioHashIndex(10, 4, n_hidden=30).code_size == 4
    assert BioHashIndex(10, 4, activity=0.1).n_hidden == 40


@pytest.mark.parametrize("bad,exc,word", [
    (np.zeros((5, 31), np.float32), ValueError, "32 columns"),
    (np.zeros(32, np.float32), ValueError, "2-D"),
    (np.zeros((2, 5, 32), np.float32), ValueError, "2-D"),
    (np.full((2, 32), np.nan, np.float32), ValueError, "NaN"),
    (np.full((2, 32), np.inf), ValueError, "NaN or infinite"),
    (np.full((2, 32), 1e300), ValueError, "float32 range"),
    (np.array([["a"] * 32]), TypeError, "numeric"),
    (np.zeros((2, 32), complex), TypeError, "real"),
])
def test_bad_vectors(index, bad, exc, word):
    for call in (index.add, index.train, index.sa_encode, lambda x: index.search(x, 3),
                 lambda x: index.range_search(x, 3)):
        with pytest.raises(exc, match=word):
            call(bad)
    assert index.ntotal == 0


@pytest.mark.parametrize("k,exc", [(0, ValueError), (-3, ValueError), (2.5, TypeError),
                                   ("3", TypeError), (True, TypeError)])
def test_bad_k(index, clustered, k, exc):
    with pytest.raises(exc, match="k"):
        index.search(clustered[0][:2], k)


def test_bad_ids(index, clustered):
    xb = clustered[0][:3]
    with pytest.raises(ValueError, match="length 3"):
        index.add_with_ids(xb, np.arange(2))
    with pytest.raises(TypeError, match="integer"):
        index.add_with_ids(xb, np.arange(3.0))
    with pytest.raises(ValueError, match="distinct"):
        index.add_with_ids(xb, np.array([1, 1, 2]))
    index.add_with_ids(xb, np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="already"):
        index.add_with_ids(xb, np.array([3, 4, 5]))
    assert index.ntotal == 3
    with pytest.raises(TypeError, match="integer"):
        index.remove_ids(np.array([1.0]))
    with pytest.raises(ValueError, match="1-D"):
        index.remove_ids(np.array([[1]]))


def test_train_needs_vectors():
    with pytest.raises(ValueError, match="at least one"):
        BioHashIndex(8, 2).train(np.zeros((0, 8), np.float32))


@pytest.mark.parametrize("kwargs,word", [
    (dict(d=0, hash_length=4), "d"),
    (dict(d=8, hash_length=0), "hash_length"),
    (dict(d=8, hash_length=8, n_hidden=8), "smaller than n_hidden"),
    (dict(d=8, hash_length=2, activity=1.5), "activity"),
    (dict(d=8, hash_length=2, p=0.5), "p"),
    (dict(d=8, hash_length=2, rank=1), "rank"),
    (dict(d=8, hash_length=2, delta=-1), "delta"),
    (dict(d=8, hash_length=2, learning_rate=0), "learning_rate"),
    (dict(d=8, hash_length=2, init="zeros"), "init"),
])
def test_bad_hyperparameters(kwargs, word):
    with pytest.raises(ValueError, match=word):
        BioHashIndex(**kwargs)


def changed_value(f, value):
    """A valid value of hyperparameter field f other than ``value``."""
    constraint = f.metadata["constraint"]
    if isinstance(constraint, OneOf):
        return next(v for v in constraint.values if v != value)
    if isinstance(constraint, Bool):
        return not value
    return (value or 0) + 1


# hyperparameters whose other values need another's: length_byte=True needs asymmetric scoring
NEEDS = {"length_byte": {"scoring": "asymmetric"}}


def test_hyperparameters_are_declared_once():
    """BioHashIndex's keywords are BioHashParams's fields: each hyperparameter is a keyword
    with the field's default, or None where the tasks set it, and reaches the params."""
    keywords = inspect.signature(BioHashIndex).parameters
    names = [f.name for f in dataclasses.fields(BioHashParams)]
    assert [f.name for f in HYPERPARAMETERS] == names[3:]
    assert list(keywords)[:3] == names[:3] == ["d", "hash_length", "n_hidden"]
    for f in HYPERPARAMETERS:
        kw = keywords[f.name]
        tasks = f.metadata["tasks"]
        assert kw.kind is kw.KEYWORD_ONLY and kw.default == (None if tasks else f.default)
        assert f.metadata["help"]
        for task in TASKS:
            value = getattr(BioHashIndex(32, 4, task=task).params, f.name)
            assert value == (tasks[task] if tasks else f.default)
            assert TASKS[task].get(f.name, value) == value
            other = changed_value(f, value)
            needs = NEEDS.get(f.name, {}) if other else {}
            assert getattr(BioHashIndex(32, 4, task=task, **{f.name: other}, **needs).params,
                           f.name) == other
        with pytest.raises((TypeError, ValueError), match=f"^{f.name} must be"):
            BioHashIndex(32, 4, **{f.name: "x"})
        with pytest.raises((TypeError, ValueError), match=f"^{f.name} must be"):
            BioHashParams(32, 4, 64, **{f.name: "x"})
    assert BioHashParams(32, 4, 80) == BioHashIndex(32, 4, task="labels").params


def test_unknown_keyword_is_a_type_error_naming_it():
    with pytest.raises(TypeError, match="'spred'.*spread, delta"):
        BioHashIndex(32, 4, spred=0.1)
    with pytest.raises(TypeError, match="'nbits'"):
        BioHashIndex(32, 4, task="labels", nbits=8)


def test_pickle_round_trip_keeps_everything(index, clustered):
    import pickle
    index.add_with_ids(clustered[0][:50], np.arange(50) * 3)
    index.remove_ids(np.array([3, 6]))
    clone = pickle.loads(pickle.dumps(index))
    np.testing.assert_array_equal(clone.storage.ids(), index.storage.ids())
    for a, b in zip(clone.search(clustered[0], 7), index.search(clustered[0], 7)):
        np.testing.assert_array_equal(a, b)
    assert clone.params == index.params
    clone.add(clustered[0][:1])
    assert clone.storage.ids()[-1] == 148 and index.ntotal == 48


@pytest.mark.parametrize("scoring", ["asymmetric", "hamming"])
def test_ivf_storage_matches_flat_with_all_lists_probed(clustered, scoring):
    xb = clustered[0]
    ids = np.random.default_rng(1).permutation(5000)[:600]   # not in storage order
    flat = BioHashIndex(32, 4, n_hidden=64, epochs=5, scoring=scoring)
    ivf = BioHashIndex(32, 4, n_hidden=64, epochs=5, scoring=scoring, storage="ivf", nlist=8,
                       nprobe=8)
    for index in (flat, ivf):
        index.train(xb)
        index.add_with_ids(xb, ids)
        assert index.remove_ids(ids[:10]) == 10
    assert ivf.storage.kind == "ivf" and ivf.nprobe == 8 and ivf.ntotal == 590
    Df, If = flat.search(xb[:30], 10)
    Di, Ii = ivf.search(xb[:30], 10)
    np.testing.assert_array_equal(Df, Di)
    np.testing.assert_array_equal(If, Ii)
    assert set(ivf.storage.ids()) == set(flat.storage.ids())
    ivf.nprobe = 1
    Di1, Ii1 = ivf.search(xb[:30], 10)
    assert not np.array_equal(Ii1, If)   # fewer lists probed: fewer candidates
    if scoring == "hamming":
        assert (Di1 >= Df).all()         # ... never closer than exact
    with pytest.raises(AttributeError, match="ivf"):
        flat.nprobe = 2
    with pytest.raises(ValueError, match="nlist"):
        BioHashIndex(32, 4, n_hidden=64, storage="ivf", nlist=1000).train(xb)
    with pytest.raises(ValueError, match="storage"):
        BioHashIndex(32, 4, storage="hnsw")
