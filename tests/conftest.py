from pathlib import Path

import numpy as np
import pytest

from benchmarks.data_dir import DATA, not_available


def data_path(*parts) -> Path:
    """Path into the shared benchmark data; skips the test when it is absent."""
    p = DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(not_available(p))
    return p


@pytest.fixture(scope="session")
def clustered():
    """Small clustered float32 data: (xb (600, 32), labels (600,))."""
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((6, 32)).astype(np.float32) * 3
    labels = rng.integers(0, 6, 600)
    xb = centers[labels] + rng.standard_normal((600, 32)).astype(np.float32)
    return xb, labels


@pytest.fixture(scope="session")
def trained(clustered):
    """A trained BioHashIndex (d=32, k=4, m=64, task="labels": Hamming distances) — build a
    fresh copy per test with fresh_index."""
    from biohash_index import BioHashIndex
    index = BioHashIndex(32, 4, n_hidden=64, epochs=5, task="labels")
    index.train(clustered[0])
    return index


@pytest.fixture(scope="session")
def trained_ivf(clustered):
    """As ``trained`` with IVF storage (nlist=4), all lists probed: exact distances."""
    from biohash_index import BioHashIndex
    index = BioHashIndex(32, 4, n_hidden=64, epochs=5, task="labels", storage="ivf", nlist=4,
                         nprobe=4)
    index.train(clustered[0])
    return index


@pytest.fixture(scope="session")
def trained_neighbors(clustered):
    """A trained BioHashIndex with the defaults of task="neighbors" (d=32, k=16, m=32,
    asymmetric scoring)."""
    from biohash_index import BioHashIndex
    index = BioHashIndex(32, 16)
    index.train(clustered[0])
    return index
