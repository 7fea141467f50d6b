"""Every numba kernel is cached and releases the GIL; kernels agree with numpy."""
import importlib
import threading

import numpy as np
import pytest
from numba.core.registry import CPUDispatcher

from biohash_index._encoding_kernels import top_k_codes
from biohash_index._inverted_kernels import _select_smallest, build_postings
from biohash_index._learning_kernels import plasticity_step, rank_units

MODULES = ["biohash_index._learning_kernels", "biohash_index._encoding_kernels",
           "biohash_index._inverted_kernels", "biohash_index._router_kernels"]


@pytest.mark.parametrize("module", MODULES)
def test_kernels_are_cached_and_release_the_gil(module):
    kernels = [f for f in vars(importlib.import_module(module)).values()
               if isinstance(f, CPUDispatcher)]
    assert kernels
    for f in kernels:
        assert f.targetoptions.get("nogil"), f"{module}.{f.__name__} holds the GIL"
        assert f._cache.__class__.__name__ == "FunctionCache", f"{module}.{f.__name__} not cached"


def test_top_k_codes_with_bias_equals_subtracting_first():
    rng = np.random.default_rng(3)
    tot = rng.standard_normal((200, 90)).astype(np.float32)
    bias = rng.standard_normal(90).astype(np.float32)
    np.testing.assert_array_equal(top_k_codes(tot, 7, 12, bias), top_k_codes(tot - bias, 7, 12))


def test_build_postings_matches_numpy():
    rng = np.random.default_rng(4)
    codes = rng.integers(0, 256, (300, 5), dtype=np.uint8)
    ptr, pos, pop = build_postings(codes, 40)
    bits = np.unpackbits(codes, axis=1, bitorder="little")
    np.testing.assert_array_equal(pop, bits.sum(axis=1))
    for j in range(40):
        np.testing.assert_array_equal(pos[ptr[j]:ptr[j + 1]], np.flatnonzero(bits[:, j]))


def test_plasticity_step_touches_only_ranked_rows_and_reports_them():
    rng = np.random.default_rng(5)
    W = rng.standard_normal((500, 16)).astype(np.float32)
    X = rng.standard_normal((30, 16)).astype(np.float32)
    tot = X @ W.T
    top = rank_units(tot, 3)
    before = W.copy()
    rows = plasticity_step(W, X, tot, top, np.array([1.0, 0.0, -0.3]), 0.05)
    assert set(rows) == set(top[:, 0]) | set(top[:, 2]) and len(rows) == len(set(rows))
    changed = np.flatnonzero((W != before).any(axis=1))
    assert set(changed) <= set(rows)
    untouched = np.setdiff1d(np.arange(500), rows)
    np.testing.assert_array_equal(W[untouched], before[untouched])


def test_kernels_run_concurrently_from_threads():
    """Two Python threads encoding at once give the same codes as one after the other."""
    rng = np.random.default_rng(6)
    tots = [rng.standard_normal((2000, 200)).astype(np.float32) for _ in range(2)]
    expected = [top_k_codes(t, 10, 25) for t in tots]
    results = [None, None]

    def work(i):
        results[i] = top_k_codes(tots[i], 10, 25)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r, e in zip(results, expected):
        np.testing.assert_array_equal(r, e)


@pytest.mark.parametrize("order", ["random", "sorted", "reversed"])
def test_select_smallest_puts_the_count_smallest_first(order):
    rng = np.random.default_rng(7)
    for n in (2, 3, 17, 200):
        a = rng.permutation(5 * n)[:n].astype(np.int64)
        if order != "random":
            a = np.sort(a) if order == "sorted" else np.sort(a)[::-1].copy()
        for count in (1, n // 2 or 1, n - 1):
            b = a.copy()
            _select_smallest(b, n, count)
            np.testing.assert_array_equal(np.sort(b[:count]), np.sort(a)[:count])
            np.testing.assert_array_equal(np.sort(b), np.sort(a))


def test_nibble_costs_are_the_unit_costs_summed_one_by_one_bit_for_bit():
    """Each entry of a query's table (``_search_kernels._nibble_costs``) is the float32 sum,
    from the group's first unit on, of its units' costs (|c_j| where bit j disagrees with
    the sign of c_j; 0 past m): the table built in 30 additions changes no distance."""
    from biohash_index._search_kernels import _nibble_costs
    rng = np.random.default_rng(5)
    for m in (5, 37, 128, 250):
        row = (rng.standard_normal(m) * rng.choice([1e-3, 1.0, 1e3], m)).astype(np.float32)
        row[rng.random(m) < 0.1] = 0
        nbytes = (m + 7) // 8
        want = np.zeros((2 * nbytes, 16), np.float32)
        for q in range(2 * nbytes):
            for v in range(16):
                s = np.float32(0)
                for t in range(min(4, m - 4 * q)):
                    x = row[4 * q + t]
                    s = np.float32(s + (max(-x, 0) if v >> t & 1 else max(x, 0)))
                want[q, v] = s
        np.testing.assert_array_equal(_nibble_costs(row, nbytes).view(np.uint32),
                                      want.view(np.uint32))


@pytest.mark.parametrize("m, n_top", [(5, 1), (5, 5), (37, 10), (400, 8), (4000, 256)])
def test_top_units_is_the_stable_order_by_decreasing_activation(m, n_top):
    """The n_top most active units, most active first, ties to the lower unit: numpy's
    stable argsort of the negated activations, cut at n_top."""
    from biohash_index._router_kernels import top_units
    rng = np.random.default_rng(m)
    a = rng.standard_normal((60, m)).astype(np.float32)
    a[:, ::3] = np.round(a[:, ::3])        # many ties, at the cut too
    np.testing.assert_array_equal(top_units(a, n_top),
                                  np.argsort(-a, axis=1, kind="stable")[:, :n_top])
