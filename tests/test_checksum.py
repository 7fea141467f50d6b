"""XXH64 (``_checksum_kernels``), the checksum of saved files: the specification's values."""
import numpy as np
import pytest

from biohash_index._checksum_kernels import xxh64


def as_array(data: bytes) -> np.ndarray:
    return np.frombuffer(data, np.uint8) if data else np.zeros(0, np.uint8)


@pytest.mark.parametrize("data, expected", [   # xxhsum's values, seed 0
    (b"", 0xEF46DB3751D8E999), (b"a", 0xD24EC4F1A98C6E5B), (b"abc", 0x44BC2CF5AD770999)])
def test_known_values(data, expected):
    assert xxh64(as_array(data)) == expected


def test_every_tail_length_matches_the_reference_implementation():
    xxhash = pytest.importorskip("xxhash")
    rng = np.random.default_rng(0)
    for n in list(range(80)) + [255, 256, 1000, 4099]:   # stripes of 32, tails of 8, 4, 1
        data = rng.integers(0, 256, n, dtype=np.uint8)
        assert xxh64(data) == xxhash.xxh64_intdigest(data.tobytes()), n


def test_unaligned_views_and_seeds():
    data = np.random.default_rng(1).integers(0, 256, 1001, dtype=np.uint8)
    assert xxh64(data[1:]) == xxh64(data[1:].copy())
    assert xxh64(data, 1) != xxh64(data, 0)


def test_one_flipped_bit_changes_the_hash():
    data = np.random.default_rng(2).integers(0, 256, 4096, dtype=np.uint8)
    flipped = data.copy()
    flipped[2000] ^= 8
    assert xxh64(data) != xxh64(flipped)
