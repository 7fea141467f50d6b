"""index_factory: faiss-style description strings."""
import numpy as np
import pytest

from biohash_index import BioHashIndex, BioHashIndexRefine, index_factory


@pytest.mark.parametrize("description,k,m,storage", [
    ("BioHash16", 16, 32, "flat"),
    ("BioHash16_m640", 16, 640, "flat"),
    ("BioHash16_a0.1", 16, 160, "flat"),
    ("BioHash8_a.25", 8, 32, "flat"),
    ("BioHash16,IVF256", 16, 32, "ivf"),
    ("BioHash32_m1280, IVF1024", 32, 1280, "ivf"),
])
def test_descriptions(description, k, m, storage):
    index = index_factory(64, description)
    assert isinstance(index, BioHashIndex)
    assert (index.d, index.hash_length, index.n_hidden, index.storage.kind) == (64, k, m, storage)
    if storage == "ivf":
        assert index.storage.nlist == int(description.rsplit("IVF", 1)[1])


def test_refine_and_options():
    index = index_factory(32, "BioHash4_m64,IVF8,RFlat", metric="ip", epochs=3, nprobe=2, seed=5)
    assert isinstance(index, BioHashIndexRefine) and index.metric == "ip"
    base = index.base_index
    assert (base.n_hidden, base.storage.nlist, base.nprobe) == (64, 8, 2)
    assert (base.params.epochs, base.params.seed) == (3, 5)


def test_factory_index_works(clustered):
    xb = clustered[0]
    index = index_factory(32, "BioHash4_m64,RFlat", epochs=3)
    index.k_factor = 4
    index.train(xb)
    index.add(xb)
    D, I = index.search(xb[:5], 3)
    np.testing.assert_array_equal(I[:, 0], np.arange(5))   # exact re-ranking finds self first
    assert (D[:, 0] == 0).all()


@pytest.mark.parametrize("description,word", [
    ("PQ8", "start with BioHash"),
    ("LSH16x", "start with BioHash"),
    ("IDMap", "start with BioHash"),
    ("BioHash", "start with BioHash"),
    ("BioHash16_x3", "start with BioHash"),
    ("IVF256,BioHash16", "start with BioHash"),
    ("BioHash16,IVF256,IVF64", "unexpected component 'IVF64'"),
    ("BioHash16,PQ8", "unexpected component 'PQ8'"),
    ("BioHash16,RFlat,IVF8", "unexpected component 'RFlat'"),
    ("BioHash16,", "unexpected component ''"),
])
def test_bad_descriptions(description, word):
    with pytest.raises(ValueError, match=word):
        index_factory(32, description)


def test_bad_arguments():
    with pytest.raises(TypeError, match="description"):
        index_factory(32, 16)
    with pytest.raises(ValueError, match="metric"):
        index_factory(32, "BioHash16", metric="cosine")
    with pytest.raises(ValueError, match="metric"):
        index_factory(32, "BioHash16", metric=2)
    with pytest.raises(ValueError, match="n_hidden"):
        index_factory(32, "BioHash16_m16")            # hash_length must be < n_hidden
    with pytest.raises(ValueError, match="activity"):
        index_factory(32, "BioHash16_a1.5")
