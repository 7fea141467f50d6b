"""The length byte (``length_byte=True``): the byte's levels (``_lengths``), codes that carry
it, search by the estimated L2 distance to the decoded vector (``_search.estimates``), every
storage kind, range search over the bits alone, files and validation."""
import faiss
import numpy as np
import pytest

from biohash_index import (BioHashFormatError, BioHashIndex, BioHashModel, read_index,
                           serialize_index, deserialize_index, write_index)
from biohash_index._formats import index as index_format
from biohash_index._formats.index import deserialize_state, serialize_state
from biohash_index._search import encode_queries
from biohash_index._lengths import (LENGTH_BITS, LEVEL_BYTES, LEVELS, byte_lengths,
                                    length_bytes, levels)
from biohash_index.datasets import load_ann
from biohash_index.evaluation import recall_at_k

from .conftest import data_path

D, HASH_LENGTH = 64, 28   # m = 56 units <= d: orthonormal units, the estimate is exact


def varied(n, seed=0, d=D, n_clusters=50):
    """float32 (n, d): mean + s u, u a noisy unit direction of one of n_clusters (the same
    for every seed), s log-uniform over 0.3-3: neighbours share a direction and a length."""
    rng = np.random.default_rng(seed)
    dirs = np.random.default_rng(99).standard_normal((n_clusters, d))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    u = dirs[rng.integers(n_clusters, size=n)] + rng.standard_normal((n, d)) / np.sqrt(d)
    s = np.exp(rng.uniform(np.log(0.3), np.log(3.0), (n, 1)))
    return (2.0 + s * u).astype(np.float32)


@pytest.fixture(scope="module")
def xb():
    return varied(4000)


@pytest.fixture(scope="module")
def xq():
    return varied(40, seed=1)


@pytest.fixture(scope="module")
def index(xb):
    index = BioHashIndex(D, HASH_LENGTH, length_byte=True)
    index.train(xb)
    index.add(xb)
    return index


def test_each_level_is_a_distinct_byte_of_four_bits():
    assert LEVELS == 70 and len(set(LEVEL_BYTES.tolist())) == LEVELS
    assert (np.unpackbits(LEVEL_BYTES[:, None], axis=1).sum(axis=1) == LENGTH_BITS).all()
    lv = levels(0.5, 8.0)
    assert lv[0] == np.float32(0.5) and np.isclose(lv[-1], 8.0)
    assert np.allclose(np.diff(np.log(lv.astype(np.float64))), np.log(16) / (LEVELS - 1),
                       rtol=1e-5)
    # a level reads back as itself; lengths outside take the nearest end; 0 the least
    assert (byte_lengths(length_bytes(lv.astype(np.float64), lv), lv) == lv).all()
    ends = byte_lengths(length_bytes(np.array([0.0, 0.1, 100.0]), lv), lv)
    assert (ends == [lv[0], lv[0], lv[-1]]).all()
    # between two levels, the nearer in log scale
    mid = np.sqrt(lv[10] * np.float64(lv[11]))
    assert byte_lengths(length_bytes(np.array([mid * 0.999, mid * 1.001]), lv), lv).tolist() \
        == [lv[10], lv[11]]


def test_levels_of_one_length_or_none():
    assert (levels(2.0, 2.0) == 2.0).all()
    assert (levels(np.inf, 0.0) == 1.0).all()   # no positive length


def test_codes_carry_the_length_byte(index, xb):
    codes = index.sa_encode(xb[:100])
    assert index.code_size == codes.shape[1] == HASH_LENGTH * 2 // 8 + 1
    assert (np.unpackbits(codes[:, -1:], axis=1).sum(axis=1) == LENGTH_BITS).all()
    assert (np.unpackbits(codes[:, :-1], axis=1).sum(axis=1) == HASH_LENGTH).all()
    s = np.linalg.norm(xb[:100].astype(np.float64) - index.model.mean_, axis=1)
    held = byte_lengths(codes[:, -1], index.model.length_levels_)
    step = np.log(index.model.length_levels_[1] / index.model.length_levels_[0])
    assert np.abs(np.log(held / s)).max() <= step / 2 + 1e-6
    # sa_decode puts the decoded vector at the length the byte holds
    assert np.allclose(np.linalg.norm(index.sa_decode(codes) - index.model.mean_, axis=1), held,
                       rtol=1e-4)


def estimated(index, xb, xq):
    """float64 (nq, n): the estimate of ``_search.estimates`` for every query and stored
    vector, computed here from the codes' bits: |q - mean|^2 + s^2 - 2 s |q - mean| cos, cos
    between the bits less k / m and the query's unit inputs less its threshold, c."""
    prm = index.params
    k, m = prm.hash_length, prm.n_hidden
    codes = index.sa_encode(xb)
    beta = np.unpackbits(codes[:, :-1], axis=1, count=m, bitorder="little") - k / m
    s = byte_lengths(codes[:, -1], index.model.length_levels_)
    c = encode_queries(index.model, xq).c.astype(np.float64)
    cos = (c @ beta.T) / (np.linalg.norm(c, axis=1)[:, None] * np.sqrt(k * (m - k) / m))
    qn = np.linalg.norm(xq.astype(np.float64) - index.model.mean_, axis=1)[:, None]
    return qn ** 2 + s ** 2 - 2 * s * qn * cos


def test_search_ranks_by_the_estimated_distance(index, xb, xq):
    est = estimated(index, xb, xq)
    # every code a candidate: the k least estimates, at their values
    D_, I = index.search(xq, 10, params={"shortlist": len(xb)})
    assert np.allclose(D_, np.take_along_axis(est, I, 1), rtol=1e-4, atol=1e-3)
    assert np.allclose(D_, np.sort(est, axis=1)[:, :10], rtol=1e-4, atol=1e-3)
    # the default shortlist: its candidates' estimates, ascending
    D_, I = index.search(xq, 10)
    assert np.allclose(D_, np.take_along_axis(est, I, 1), rtol=1e-4, atol=1e-3)
    assert (np.diff(D_, axis=1) >= 0).all()


def test_the_estimate_lies_between_the_nearest_and_farthest_points_at_that_length(index, xb):
    xq = xb[:30]
    est = estimated(index, xb, xq)
    s = byte_lengths(index.sa_encode(xb)[:, -1], index.model.length_levels_)
    qn = np.linalg.norm(xq.astype(np.float64) - index.model.mean_, axis=1)[:, None]
    assert ((qn - s) ** 2 <= est + 1e-6).all() and (est <= (qn + s) ** 2 + 1e-6).all()
    D_, I = index.search(xq, 1)
    assert (I[:, 0] == np.arange(30)).mean() > 0.9   # a stored vector finds itself


def test_the_byte_finds_more_neighbours_where_lengths_vary(xb, xq):
    # equal bytes per vector: 8 bytes of bits against 7 of bits and the length byte
    _, gt = faiss.knn(xq, xb, 10)
    found = {}
    for length_byte, hash_length in ((False, 32), (True, 28)):
        index = BioHashIndex(D, hash_length, length_byte=length_byte)
        index.train(xb)
        index.add(xb)
        assert index.code_size == 8
        found[length_byte] = recall_at_k(index.search(xq, 10)[1], gt, 10)
    assert found[True] >= found[False] + 0.15   # measured: 0.31 -> 0.585


@pytest.mark.parametrize("storage", ["ivf", "inverted"])
def test_every_storage_searches_as_flat(index, xb, xq, storage):
    other = BioHashIndex(D, HASH_LENGTH, length_byte=True, storage=storage)
    other.train(xb)
    other.add(xb)
    params = {"nprobe": other.storage.nlist} if storage == "ivf" else None
    for k in (1, 10):
        D1, I1 = index.search(xq, k)
        D2, I2 = other.search(xq, k, params=params)
        assert (I1 == I2).all() and (D1 == D2).all()


def test_range_search_counts_the_bits_alone(index, xb, xq):
    bits = index.sa_encode(xb)[:, :-1]
    qbits = index.sa_encode(xq)[:, :-1]
    H = np.unpackbits(qbits[:, None, :] ^ bits[None], axis=2).sum(axis=2)
    radius = int(np.median(H.min(axis=1))) + 4
    lims, Dr, Ir = index.range_search(xq, radius)
    for i in range(len(xq)):
        found = Ir[lims[i]:lims[i + 1]]
        assert sorted(found.tolist()) == np.nonzero(H[i] < radius)[0].tolist()
        assert (Dr[lims[i]:lims[i + 1]] == H[i, found]).all()


def test_a_saved_index_keeps_its_levels_and_answers(index, xq, tmp_path):
    path = str(tmp_path / "lengths.bh")
    write_index(index, path)
    loaded = read_index(path)
    assert loaded.params.length_byte
    assert (loaded.model.length_levels_ == index.model.length_levels_).all()
    for a, b in zip(index.search(xq, 10), loaded.search(xq, 10)):
        assert (a == b).all()
    again = deserialize_index(serialize_index(index))
    assert (again.search(xq, 5)[1] == index.search(xq, 5)[1]).all()


def test_a_file_without_its_levels_is_refused(index, monkeypatch):
    state = index._state()
    missing = type(state)(**{**state.__dict__, "length_levels": None})
    flipped = type(state)(**{**state.__dict__, "length_levels": np.ascontiguousarray(
        index.model.length_levels_[::-1])})
    for bad in (missing, flipped):
        with pytest.raises(ValueError, match="length_levels"):   # a save refuses it ...
            serialize_state(bad)
    monkeypatch.setattr(index_format, "state_problem", lambda state: None)
    files = [serialize_state(bad) for bad in (missing, flipped)]
    monkeypatch.undo()
    for data in files:   # ... and so does a load of a file that holds it
        with pytest.raises(BioHashFormatError, match="length_levels"):
            deserialize_state(data)


def test_bad_settings_and_codes_are_refused(index):
    with pytest.raises(ValueError, match="length_byte=True needs scoring='asymmetric'"):
        BioHashIndex(D, HASH_LENGTH, length_byte=True, scoring="hamming")
    with pytest.raises(ValueError, match="length_byte"):
        BioHashIndex(D, HASH_LENGTH, task="labels", length_byte=True)
    codes = index.sa_encode(varied(5, seed=3))
    codes[0, -1] = 0xFF   # eight bits: no length byte holds it
    with pytest.raises(ValueError, match="length byte"):
        index.add_sa_codes(codes)
    with pytest.raises(ValueError, match=r"shape \(n, 8\)"):
        index.sa_decode(codes[:, :-1])
    with pytest.raises(ValueError, match="length_levels"):
        BioHashModel.from_arrays(index.params, index.model.mean_, index.model.weights_)


def test_untrained_codes_hold_length_one():
    index = BioHashIndex(D, HASH_LENGTH, length_byte=True)
    with pytest.warns(UserWarning):
        codes = index.sa_encode(varied(3))
    assert (byte_lengths(codes[:, -1], levels(1.0, 1.0)) == 1.0).all()


def test_fmnistsmall_finds_more_neighbours_with_the_byte():
    xb, xq, gt = load_ann(data_path("fmnistsmall"))
    found = {}
    for length_byte, hash_length in ((False, 64), (True, 60)):   # 16 bytes per vector each
        index = BioHashIndex(xb.shape[1], hash_length, length_byte=length_byte)
        index.train(xb)
        index.add(xb)
        found[length_byte] = recall_at_k(index.search(xq, 10)[1], gt, 10)
    assert found[True] >= found[False] + 0.05
