"""Real data: the MNIST-10k protocol of BENCHMARKS.md (skipped where the data is absent)."""
import faiss
import numpy as np
import pytest

from biohash_index import BioHashIndex
from biohash_index.datasets import label_split, load_mnist
from biohash_index.evaluation import mean_average_precision

from .conftest import data_path


@pytest.fixture(scope="module")
def mnist():
    x, y = load_mnist(data_path("mnist"))
    q, db = label_split(y)
    return x[q], x[db], y[q], y[db]


def test_protocol_split(mnist):
    xq, xb, yq, yb = mnist
    assert xq.shape == (1000, 784) and xb.shape == (9000, 784)
    assert np.bincount(yq).tolist() == [100] * 10
    assert 0.0 <= xb.min() and xb.max() <= 1.0


def test_biohash_beats_lsh_at_16(mnist):
    xq, xb, yq, yb = mnist
    index = BioHashIndex(784, 16, task="labels")
    index.train(xb)
    index.add(xb)
    _, I = index.search(xq, len(xb))
    ours = mean_average_precision(I, yb, yq)

    mean = xb.mean(axis=0)
    lsh = faiss.IndexLSH(784, 16, True, True)
    lsh.train(xb - mean)
    lsh.add(xb - mean)
    _, I = lsh.search(xq - mean, len(xb))
    theirs = mean_average_precision(I, yb, yq)
    print(f"mAP@All k=16: BioHash {100 * ours:.2f}%, IndexLSH {100 * theirs:.2f}%")
    assert theirs < 0.30
    assert ours > theirs + 0.15


PAPER_BIOHASH = {2: 0.4438, 4: 0.4932, 8: 0.5342, 16: 0.5492, 32: 0.5548}  # mAP@All, Table 1


@pytest.fixture(scope="module")
def default_map(mnist):
    """mAP@All of BioHashIndex(784, k, task="labels"), trained once per k."""
    xq, xb, yq, yb = mnist
    cache = {}

    def get(k):
        if k not in cache:
            index = BioHashIndex(784, k, task="labels")
            index.train(xb)
            index.add(xb)
            _, I = index.search(xq, len(xb))
            cache[k] = mean_average_precision(I, yb, yq)
        return cache[k]
    return get


@pytest.mark.parametrize("k,level", sorted(PAPER_BIOHASH.items()))
def test_defaults_reach_the_paper(default_map, k, level):
    """With the default hyperparameters, mAP@All is at least the BioHash paper's figure."""
    assert default_map(k) >= level


def test_defaults_gain_from_k32_to_k64(default_map):
    assert default_map(64) > default_map(32)
