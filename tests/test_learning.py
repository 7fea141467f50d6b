"""The plasticity rule: kernels against a plain numpy transcription, and its fixed points."""
import numpy as np
import pytest

from biohash_index import BioHashModel, BioHashParams
from biohash_index._learning_kernels import learn_batch, plasticity_step, rank_units
from biohash_index._model import p_weights


def numpy_step(W, X, p, k, spread, delta, rank, lr):
    """Krotov & Hopfield's update, transcribed with a full argsort and a dense g matrix; with
    spread > 0 the Hebbian term reaches the k top units, exp(-(r - 1) / (spread k)) at rank r."""
    tot = X @ (np.sign(W) * np.abs(W) ** (p - 1)).T          # (B, m)
    order = np.argsort(-tot, axis=1, kind="stable")
    g = np.zeros_like(tot)
    rows = np.arange(len(X))
    for r in range(k if spread > 0 else 1):
        g[rows, order[:, r]] = np.exp(-r / (spread * k)) if spread > 0 else 1.0
    g[rows, order[:, rank - 1]] -= delta
    ds = g.T @ X - (g * tot).sum(axis=0)[:, None] * W
    return W + lr * ds / np.abs(ds).max()


@pytest.mark.parametrize("p,k,spread,delta,rank", [
    (2.0, 3, 0.0, 0.4, 2), (3.0, 3, 0.0, 0.2, 3), (2.0, 3, 0.0, 0.0, 2), (1.5, 4, 0.25, 0.0, 2),
    (2.0, 2, 0.5, 0.3, 3), (2.0, 4, 1.0, 0.2, 2)])
def test_step_matches_numpy_transcription(p, k, spread, delta, rank):
    rng = np.random.default_rng(1)
    W = rng.standard_normal((12, 5)).astype(np.float32)
    X = rng.standard_normal((7, 5)).astype(np.float32)
    expected = numpy_step(W.astype(np.float64), X.astype(np.float64), p, k, spread, delta, rank,
                          0.05)
    g = BioHashParams(d=5, hash_length=k, n_hidden=12, p=p, spread=spread, delta=delta,
                      rank=rank).rank_factors()
    tot = X @ p_weights(W, p).T
    top = rank_units(tot, len(g))
    np.testing.assert_array_equal(top, np.argsort(-tot, axis=1, kind="stable")[:, :len(g)])
    plasticity_step(W, X, tot, top, g, 0.05)
    np.testing.assert_allclose(W, expected, rtol=1e-5, atol=1e-6)


def test_rank_factors():
    prm = BioHashParams(d=5, hash_length=4, n_hidden=12, spread=0.5, delta=0.3, rank=6)
    np.testing.assert_allclose(prm.rank_factors(), [1, np.exp(-0.5), np.exp(-1), np.exp(-1.5),
                                                    0, -0.3])
    np.testing.assert_array_equal(prm.replace(spread=0.0, delta=0.0).rank_factors(), [1.0])
    g = prm.replace(hash_length=10, spread=0.1, delta=0.0).rank_factors()  # 1 / e per rank
    np.testing.assert_allclose(g, np.exp(-np.arange(5)))  # e^-5 < MIN_FACTOR = 1e-2 <= e^-4


def test_rank_units_ties_go_to_lower_index():
    tot = np.array([[1, 3, 3, 2]], np.float32)
    np.testing.assert_array_equal(rank_units(tot, 2), [[1, 2]])


def test_winner_moves_towards_its_input():
    rng = np.random.default_rng(2)
    W = rng.standard_normal((8, 6)).astype(np.float32)
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    x = rng.standard_normal((1, 6)).astype(np.float32)
    x /= np.linalg.norm(x)
    tot = x @ W.T
    first = rank_units(tot, 1)[0, 0]
    before = W[first] @ x[0]
    plasticity_step(W, x, tot, rank_units(tot, 1), np.ones(1), 0.1)
    w = W[first] / np.linalg.norm(W[first])
    assert w @ x[0] > before


@pytest.mark.parametrize("p", [2.0, 3.0])
def test_weights_converge_to_unit_p_norm(p, clustered):
    """Gaussian weights start far from the unit sphere (norm ~ sqrt(d)); units that win settle on it."""
    xb = clustered[0]
    prm = BioHashParams(d=32, hash_length=3, n_hidden=24, p=p, delta=0.0, epochs=200,
                        init="gaussian", learning_rate=0.05, center=False)
    model = BioHashModel(prm).train(xb)
    W = model.weights_
    norms = np.sum(np.abs(W) ** p, axis=1) ** (1 / p)
    wins = np.bincount(np.argmax(xb @ p_weights(W, p).T, axis=1), minlength=24)
    assert (wins > 0).sum() >= 6
    np.testing.assert_allclose(norms[wins > 0], 1.0, atol=0.1)    # every winner, from norm ~sqrt(d)
    np.testing.assert_allclose(norms[wins >= 50], 1.0, atol=0.01)  # frequent winners: converged


def test_same_seed_same_weights_and_codes(clustered):
    xb = clustered[0]
    prm = BioHashParams(d=32, hash_length=4, n_hidden=64, epochs=3, seed=7)
    a, b = BioHashModel(prm).train(xb), BioHashModel(prm).train(xb)
    np.testing.assert_array_equal(a.weights_, b.weights_)
    np.testing.assert_array_equal(a.encode(xb), b.encode(xb))
    c = BioHashModel(prm.replace(seed=8)).train(xb)
    assert not np.array_equal(a.weights_, c.weights_)


@pytest.mark.parametrize("p", [1.5, 2.5, 3.0])
def test_p_power_is_sign_times_abs_power(p):
    W = np.random.default_rng(6).standard_normal((9, 7)).astype(np.float32)
    np.testing.assert_allclose(p_weights(W, p), np.sign(W) * np.abs(W) ** (p - 1), rtol=1e-6)


def test_learn_batch_is_rank_update_and_refresh_in_one_call():
    rng = np.random.default_rng(7)
    W = rng.standard_normal((40, 6)).astype(np.float32)
    X = rng.standard_normal((10, 6)).astype(np.float32)
    g = np.array([1.0, 0.5, -0.2])
    p = 1.5
    W1, W2 = W.copy(), W.copy()
    Wp1 = p_weights(W1, p)
    tot = X @ Wp1.T
    won = np.zeros(40, bool)
    learn_batch(W1, Wp1, X, tot, g, p, 0.05, won)
    top = rank_units(tot, 3)
    plasticity_step(W2, X, tot, top, g, 0.05)
    np.testing.assert_array_equal(W1, W2)
    np.testing.assert_array_equal(Wp1, p_weights(W2, p))
    np.testing.assert_array_equal(np.flatnonzero(won), np.unique(top[:, 0]))


@pytest.mark.parametrize("n_ranks", [1, 2, 4, 5, 14])
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("shift", [0.0, 2.5, 10.0])
def test_rank_units_is_a_stable_argsort(n_ranks, ties, shift):
    """shift 2.5: some rows run out of positive values within their first ranks (ranked by
    the scan, not by bits); 10: all values negative."""
    tot = np.random.default_rng(n_ranks).standard_normal((200, 320)).astype(np.float32)
    if ties:
        tot = np.round(tot).astype(np.float32)
    tot -= np.float32(shift)
    before = tot.copy()
    top = rank_units(tot, n_ranks)
    np.testing.assert_array_equal(top, np.argsort(-tot, axis=1, kind="stable")[:, :n_ranks])
    np.testing.assert_array_equal(tot, before)  # rows are restored


def test_rank_units_signed_zeros_tie():
    tot = np.array([[-0.0, -1.0, 0.0], [-2.0, 0.0, -0.0]], np.float32)
    np.testing.assert_array_equal(rank_units(tot, 2), [[0, 2], [1, 2]])
