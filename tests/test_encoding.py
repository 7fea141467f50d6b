"""Codes: top-k units packed little-endian, exactly k bits set."""
import numpy as np
import pytest

from biohash_index.encoding_kernels import top_k_codes


@pytest.mark.parametrize("m,k", [(40, 2), (64, 5), (100, 10), (13, 12)])
def test_top_k_codes_match_argsort_and_packbits(m, k):
    rng = np.random.default_rng(m)
    tot = rng.standard_normal((50, m)).astype(np.float32)
    code_size = (m + 7) // 8
    codes = top_k_codes(tot, k, code_size)
    bits = np.zeros((50, 8 * code_size), np.uint8)
    np.put_along_axis(bits, np.argsort(-tot, axis=1)[:, :k], 1, axis=1)
    np.testing.assert_array_equal(codes, np.packbits(bits, axis=1, bitorder="little"))
    assert (np.unpackbits(codes, axis=1).sum(axis=1) == k).all()


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
