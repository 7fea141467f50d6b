"""Codes: top-k units packed little-endian, exactly k bits set."""
import numba
import numpy as np
import pytest

from biohash_index import BioHashModel, BioHashParams
from biohash_index._encoding_kernels import top_k_codes


def expected_codes(tot, k):
    """The k largest of each row, ties to the lower unit (a stable sort), packed little-endian."""
    n, m = tot.shape
    bits = np.zeros((n, 8 * ((m + 7) // 8)), np.uint8)
    np.put_along_axis(bits, np.argsort(-tot, axis=1, kind="stable")[:, :k], 1, axis=1)
    return np.packbits(bits, axis=1, bitorder="little")


@pytest.mark.parametrize("m,k", [(40, 2), (64, 5), (100, 10), (13, 12), (1280, 64), (320, 1),
                                 (5, 2), (7, 6)])
@pytest.mark.parametrize("kind", ["normal", "skewed", "few values"])
@pytest.mark.parametrize("with_bias", [False, True])
def test_top_k_codes_match_a_stable_argsort(m, k, kind, with_bias):
    rng = np.random.default_rng(m)
    tot = rng.standard_normal((300, m)).astype(np.float32)
    if kind == "skewed":  # far from normal: the first threshold often keeps fewer than k
        tot = np.exp(3 * tot).astype(np.float32)
    elif kind == "few values":  # many ties at the k-th value
        tot = np.round(tot).astype(np.float32)
    bias = np.round(rng.standard_normal(m)).astype(np.float32) if with_bias else None
    codes = top_k_codes(tot, k, (m + 7) // 8, bias)
    np.testing.assert_array_equal(codes, expected_codes(tot if bias is None else tot - bias, k))
    assert (np.unpackbits(codes, axis=1).sum(axis=1) == k).all()


def test_infinite_and_nan_inputs_still_give_k_bits():
    tot = np.zeros((4, 24), np.float32)
    tot[0, 5] = np.inf
    tot[1, :] = -np.inf
    tot[2, ::2] = np.nan  # NaN ranks below everything
    tot[3, :] = np.nan
    codes = top_k_codes(tot, 3, 3)
    assert (np.unpackbits(codes, axis=1).sum(axis=1) == 3).all()
    np.testing.assert_array_equal(codes[:2], expected_codes(tot[:2], 3))
    np.testing.assert_array_equal(codes[2], expected_codes(np.nan_to_num(tot[2:3], nan=-np.inf), 3)[0])


def test_ties_keep_exactly_k_bits_and_prefer_low_units():
    tot = np.zeros((3, 16), np.float32)
    codes = top_k_codes(tot, 3, 2)
    np.testing.assert_array_equal(np.unpackbits(codes, axis=1, bitorder="little")[:, :3], 1)
    assert (np.unpackbits(codes, axis=1).sum(axis=1) == 3).all()


def test_sa_encode_has_k_ones_and_m_bits(trained, clustered):
    codes = trained.sa_encode(clustered[0])
    assert codes.dtype == np.uint8 and codes.shape == (600, trained.code_size)
    bits = np.unpackbits(codes, axis=1, bitorder="little")
    assert (bits.sum(axis=1) == trained.hash_length).all()
    assert not bits[:, trained.n_hidden:].any()


@pytest.mark.parametrize("n_threads", [1, 2])
def test_encode_in_blocks_on_threads_equals_one_selection(n_threads):
    """Many blocks (m = 4096: 64 rows each) on worker threads give the codes of one pass."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3000, 16)).astype(np.float32)
    model = BioHashModel(BioHashParams(d=16, hash_length=8, n_hidden=4096, epochs=1)).train(x)
    tot, bias = model._inputs(x, np.empty((len(x), 4096), np.float32))  # in one block
    expected = top_k_codes(tot, 8, 512, bias)
    old = numba.get_num_threads()
    numba.set_num_threads(min(n_threads, numba.config.NUMBA_NUM_THREADS))
    try:
        np.testing.assert_array_equal(model.encode(x), expected)
    finally:
        numba.set_num_threads(old)
