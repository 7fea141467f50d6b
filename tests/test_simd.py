"""The vector primitives against numpy, with NaN, infinities and signed zeros."""
import numpy as np
import pytest
from numba import njit

from biohash_index._simd import compress8, ge_mask8, load_at, popcount


@njit(cache=True)
def masks_and_indices(row, t):
    """Both primitives over the whole chunks of 8 of row."""
    full = row.shape[0] - row.shape[0] % 8
    masks = np.empty(full // 8, np.int64)
    out = np.full(full + 8, -1, np.int32)
    c = 0
    for j in range(0, full, 8):
        masks[j // 8] = ge_mask8(row, j, t)
        c = compress8(row, j, t, out, c)
    return masks, out[:c]


@pytest.mark.parametrize("t", [0.5, 0.0, -np.inf, np.inf])
def test_primitives_match_numpy(t):
    rng = np.random.default_rng(0)
    row = rng.standard_normal(203).astype(np.float32)
    row[[3, 50, 51]] = np.nan
    row[[7, 90]] = np.inf
    row[[8, 91]] = -np.inf
    row[[9, 10]] = [0.0, -0.0]
    t = np.float32(t)
    masks, idx = masks_and_indices(row, t)
    full = 200
    passed = row[:full] >= t  # NaN never passes
    np.testing.assert_array_equal(masks, np.packbits(passed, bitorder="little"))
    np.testing.assert_array_equal(idx, np.flatnonzero(passed))


def test_a_strided_row_is_refused_at_compile_time():
    with pytest.raises(Exception, match="ge_mask8"):
        masks_and_indices(np.zeros(32, np.float32)[::2], np.float32(0))


@njit(cache=True)
def loads(a, offset):
    address = a.ctypes.data + offset
    return (load_at(address, np.uint64), load_at(address, np.uint32),
            load_at(address, np.uint8), popcount(load_at(address, np.uint64)))


def test_loads_at_any_alignment_and_popcount_match_numpy():
    a = np.random.default_rng(0).integers(0, 256, 64, dtype=np.uint8)
    for offset in (0, 1, 3, 7, 13, 50):
        u64, u32, u8, bits = loads(a, offset)
        assert u64 == a[offset:offset + 8].view("<u8")[0]
        assert u32 == a[offset:offset + 4].view("<u4")[0]
        assert u8 == a[offset]
        assert bits == np.unpackbits(a[offset:offset + 8]).sum()
