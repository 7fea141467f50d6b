"""task="neighbors": asymmetric scoring, orthogonal initial weights, training on the first
add, the work budget of training, and files of format version 1."""
import copy
import logging
import shutil
from pathlib import Path

import faiss
import numpy as np
import pytest

from biohash_index import TASKS, BioHashIndex, read_index
from biohash_index import _centering as centering
from biohash_index.evaluation import recall_at_k
from biohash_index._model import BioHashParams, auto_epochs, orthonormal_rows
from biohash_index._sampling import RowSample
from biohash_index._search import MIN_SHORTLIST

from .conftest import data_path

SENTINEL = np.float32(2**31 - 1)
DATA = Path(__file__).parent / "data"


def weighted_hamming(acts, k, codes):
    """Reference: float64 (nq, n) weighted Hamming distances of every stored code."""
    bits = np.unpackbits(codes, axis=1, bitorder="little")[:, :acts.shape[1]].astype(np.float64)
    top = -np.sort(-acts.astype(np.float64), axis=1)
    c = acts - (top[:, k - 1:k] + top[:, k:k + 1]) / 2
    return (np.maximum(c, 0).sum(axis=1, keepdims=True) - c @ bits.T) / np.abs(c).mean(
        axis=1, keepdims=True)


def test_tasks_set_defaults_and_explicit_keywords_win():
    index = BioHashIndex(32, 16)
    prm = index.params
    assert index.n_hidden == 32 and prm.scoring == "asymmetric" and prm.center
    assert (prm.p, prm.spread, prm.init) == (2.0, 0.0, "orthogonal")
    labels = BioHashIndex(32, 16, task="labels").params
    assert labels == BioHashParams(d=32, hash_length=16, n_hidden=320)   # the 0.1 defaults
    assert BioHashIndex(32, 16, task="labels", activity=0.1, p=3.0).params.replace(
        n_hidden=320, p=1.5) == labels
    assert set(TASKS) == {"neighbors", "labels"}
    with pytest.raises(ValueError, match="task must be one of"):
        BioHashIndex(32, 16, task="images")
    with pytest.raises(ValueError, match="scoring must be one of"):
        BioHashIndex(32, 16, scoring="cosine")


def test_orthonormal_rows_are_orthonormal_within_blocks():
    W = orthonormal_rows(70, 32, np.random.default_rng(0)).astype(np.float64)
    assert W.shape == (70, 32)
    for s in range(0, 70, 32):
        block = W[s:s + 32]
        np.testing.assert_allclose(block @ block.T, np.eye(len(block)), atol=1e-5)
    assert BioHashIndex(32, 16, p=2.0).params.init == "orthogonal"


@pytest.mark.parametrize("storage", ["flat", "inverted"])
def test_search_ranks_by_weighted_hamming(clustered, storage):
    xb = clustered[0]
    index = BioHashIndex(32, 16, storage=storage)
    index.train(xb)
    index.add(xb[:MIN_SHORTLIST])           # the shortlist holds every stored code
    xq = np.concatenate([xb[:3], xb[100:110] + 0.3])
    D, I = index.search(xq, 20)
    assert D.dtype == np.float32 and I.dtype == np.int64 and D.shape == (13, 20)
    acts, bias = index.model.inputs(xq)
    acts = acts if bias is None else acts - bias
    ref = weighted_hamming(acts, index.hash_length, index.sa_encode(xb[:MIN_SHORTLIST]))
    np.testing.assert_allclose(D, np.sort(ref, axis=1)[:, :20], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ref[np.arange(13)[:, None], I], D, rtol=1e-4, atol=1e-4)
    assert (np.diff(D, axis=1) >= 0).all() and (D >= 0).all()
    assert (D[:3, 0] == 0).all() and (I[:3, 0] == np.arange(3)).all()   # itself, at 0


def test_flat_and_inverted_give_the_same_results(clustered):
    xb = clustered[0]
    results = []
    for storage in ("flat", "inverted"):
        index = BioHashIndex(32, 8, storage=storage)
        index.train(xb)
        index.add_with_ids(xb, np.arange(len(xb)) * 2 + 1)
        results.append(index.search(xb[:50] + 0.2, 15))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_fewer_results_than_k_are_padded_as_in_faiss(trained_neighbors, clustered):
    index = copy.deepcopy(trained_neighbors)
    index.add(clustered[0][:5])
    D, I = index.search(clustered[0][:2], 8)
    assert (I[:, 5:] == -1).all() and (D[:, 5:] == SENTINEL).all()
    assert sorted(I[0, :5]) == list(range(5))
    index.reset()
    D, I = index.search(clustered[0][:2], 3)
    assert (I == -1).all() and (D == SENTINEL).all()


def test_removed_ids_are_never_returned(trained_neighbors, clustered):
    xb = clustered[0]
    index = copy.deepcopy(trained_neighbors)
    index.add(xb)
    assert index.remove_ids(np.arange(0, 600, 2)) == 300
    _, I = index.search(xb[:20], 30)
    assert (I % 2 == 1).all()


def test_indexlsh_script_body_runs_unchanged(clustered, caplog):
    """IndexLSH(d, nbits); index.add(xb); D, I = index.search(xq, 15): no train call."""
    xb = clustered[0]
    index = BioHashIndex(32, 16)
    assert not index.is_trained
    index.add(xb[:0])                       # nothing to learn from: still untrained
    assert not index.is_trained and index.ntotal == 0
    with caplog.at_level(logging.INFO, logger="biohash_index"):
        index.add(xb)
    assert "training on its 600 vectors" in caplog.text
    assert index.is_trained and index.ntotal == 600
    D, I = index.search(xb[:10], 15)
    assert I.shape == (10, 15) and (I[:, 0] == np.arange(10)).all()
    trained = BioHashIndex(32, 16)
    trained.train(xb)
    np.testing.assert_array_equal(trained.sa_encode(xb), index.sa_encode(xb))
    other = BioHashIndex(32, 16)
    other.add_with_ids(xb, np.arange(600) + 10)
    assert other.is_trained and other.storage.ids()[0] == 10


def test_training_work_is_budgeted(caplog):
    assert auto_epochs(320, 9000, 784) == 20                # MNIST k=16: 200 m / n < 20
    assert auto_epochs(1280, 9000, 784) == 29               # MNIST k=64: ~200 wins per unit
    with caplog.at_level(logging.INFO, logger="biohash_index"):
        epochs = auto_epochs(10240, 2000, 128)               # labels, k=512 on 2,000 vectors
    assert 1 <= epochs < 400 and "work budget" in caplog.text
    assert epochs * 10240 * 2000 * 128 <= 3e11


def test_save_and_load_keep_asymmetric_search(trained_neighbors, clustered, tmp_path):
    index = copy.deepcopy(trained_neighbors)
    index.add(clustered[0])
    index.save(tmp_path / "nn.index")
    loaded = read_index(tmp_path / "nn.index")
    assert loaded.params == index.params and loaded.asymmetric
    for a, b in zip(index.search(clustered[0][:30], 10), loaded.search(clustered[0][:30], 10)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("storage", ["flat", "ivf"])
def test_files_of_format_version_1_load_and_search_the_same(storage, tmp_path):
    """Indexes written by biohash-index 0.1 (tests/data, saved by that version)."""
    path = shutil.copytree(DATA / f"v1-{storage}.index", tmp_path / "old.index")
    expected = np.load(DATA / f"v1-{storage}.expected.npz")
    index = read_index(path)
    assert index.params.scoring == "hamming" and not index.asymmetric
    D, I = index.search(expected["xq"], 6)
    np.testing.assert_array_equal(D, expected["D"])
    np.testing.assert_array_equal(I, expected["I"])


@pytest.mark.parametrize("storage", ["flat", "ivf"])
def test_files_of_format_version_3_load_and_search_the_same(storage, tmp_path):
    """One-file indexes of the default task written by format version 3 (tests/data, saved
    by the revision before the length byte; learned projection, routed IVF)."""
    path = shutil.copy(DATA / f"v3-{storage}.bhx", tmp_path / "old.bhx")
    expected = np.load(DATA / f"v3-{storage}.expected.npz")
    index = read_index(path)
    assert index.asymmetric and not index.params.length_byte
    assert index.model.length_levels_ is None
    D, I = index.search(expected["xq"], 6)
    np.testing.assert_array_equal(D, expected["D"])
    np.testing.assert_array_equal(I, expected["I"])


def test_swap_beats_indexlsh_on_siftsmall():
    """The literal swap IndexLSH(d, n) -> BioHashIndex(d, n) on real descriptors."""
    from biohash_index.datasets import load_ann
    xb, xq, gt = load_ann(data_path("siftsmall"))
    for n in (16, 64):
        lsh = faiss.IndexLSH(128, n)
        lsh.add(xb)
        bio = BioHashIndex(128, n)
        bio.add(xb)
        ours = recall_at_k(bio.search(xq, 10)[1], gt, 10)
        assert ours > recall_at_k(lsh.search(xq, 10)[1], gt, 10)
        equal_bytes = faiss.IndexLSH(128, 8 * bio.code_size)
        equal_bytes.add(xb)
        assert ours >= 0.9 * recall_at_k(equal_bytes.search(xq, 10)[1], gt, 10)


def test_training_plot_of_an_index_without_epochs_says_why(trained_neighbors, tmp_path):
    pytest.importorskip("matplotlib")
    from biohash_index import plots
    assert trained_neighbors.params.epochs == 0
    with pytest.raises(ValueError, match="no epochs of the learning rule"):
        plots.plot_training_stats(trained_neighbors.model.train_stats_, tmp_path / "p.png")
    assert not (tmp_path / "p.png").exists()


def angular_set(n=4000, d=32, offset=3.0, seed=0):
    """Unit-norm vectors sharing one strong direction, as sentence embeddings do; the
    first 3,500 are the base, the rest queries; exact top 10 by L2 (= by angle)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32) * np.linspace(1, .2, d, dtype=np.float32)
    x[:, 0] += offset
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    xb, xq = x[:3500], x[3500:]
    return xb, xq, faiss.knn(xq, xb, 10)[1]


def recall_of(index, xb, xq, gt):
    index.add(xb)
    I = index.search(xq, 10)[1]
    return recall_at_k(I, gt, 10)


def test_training_learns_how_much_of_the_mean_to_subtract(monkeypatch):
    """On vectors that share a direction, subtracting part of the mean keeps neighbours by
    angle better than subtracting all of it or none (the untrained model)."""
    xb, xq, gt = angular_set()
    learned = BioHashIndex(32, 64)
    learned.train(xb)
    share = round(float(learned.model.mean_ @ xb.mean(0) / (xb.mean(0) @ xb.mean(0))), 4)
    assert share in (0.25, 0.5, 0.75)
    np.testing.assert_allclose(learned.model.mean_, share * xb.mean(0), rtol=1e-5, atol=1e-6)
    ours = recall_of(learned, xb, xq, gt)
    assert ours > recall_of(BioHashIndex(32, 64, center=False), xb, xq, gt)
    monkeypatch.setattr(centering, "SHARES", (1.0,))
    assert ours > recall_of(BioHashIndex(32, 64), xb, xq, gt)


def test_data_far_from_the_origin_is_centred_fully():
    xb, xq, gt = angular_set(offset=0.0)
    xb, xq = xb + 20, xq + 20          # the same neighbours, far from the origin
    index = BioHashIndex(32, 16)
    index.train(xb)
    np.testing.assert_array_equal(index.model.mean_, xb.astype(np.float64).mean(0).astype(
        np.float32))
    assert recall_of(index, xb, xq, gt) > 2 * recall_of(BioHashIndex(32, 16, center=False),
                                                        xb, xq, gt)


def test_too_few_training_rows_for_the_check_subtract_the_whole_mean(caplog):
    xb = angular_set()[0][:centering.MIN_ROWS - 1]
    index = BioHashIndex(32, 16)
    with caplog.at_level(logging.INFO, logger="biohash_index"):
        index.train(xb)
    np.testing.assert_array_equal(index.model.mean_, xb.astype(np.float64).mean(0).astype(
        np.float32))
    assert "centring" not in caplog.text


def test_a_tie_keeps_the_larger_share(monkeypatch):
    monkeypatch.setattr(centering, "neighbour_recall", lambda model, *a: 0.5)
    xb = angular_set()[0]
    assert centering.best_share(lambda s: None, xb) == (1.0, [0.5] * len(centering.SHARES))


def test_streaming_training_learns_the_same_share():
    xb = angular_set()[0]
    ref, streamed = BioHashIndex(32, 64), BioHashIndex(32, 64)
    ref.train(xb)
    streamed.train_from([xb[s:s + 500] for s in range(0, len(xb), 500)])
    np.testing.assert_array_equal(streamed.model.mean_, ref.model.mean_)


@pytest.mark.parametrize("d", [1, 32, 768, 16_384, 83_886, 83_887, 100_000, 10**6])
def test_the_centring_sample_is_at_most_64_mib(d):
    """Issue: at least 200 rows were sampled whatever d, 76 MiB at d = 100,000 and 763 MiB
    at 10**6. Where 64 MiB hold fewer than MIN_ROWS rows, there is no check (the whole mean
    is subtracted, as with fewer training rows), and no row is kept."""
    rows = centering.sample_rows(d)
    assert rows * 4 * d <= 64 * 2**20
    assert rows == 0 or rows >= centering.MIN_ROWS
    sample = RowSample(rows, d)
    sample.add(np.ones((3, d), np.float32), np.random.default_rng(0))
    assert len(sample.rows) == min(rows, 3)
