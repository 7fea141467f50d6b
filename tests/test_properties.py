"""Property-based tests (hypothesis): search is a brute-force Hamming ranking of the stored
codes, and any sequence of calls keeps the stored ids equal to a simple reference model."""
import copy
import pickle
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from biohash_index import BioHashIndex
from biohash_index._validation import MAX_ID

SENTINEL = np.float32(2**31 - 1)
FAST = settings(deadline=None, max_examples=25, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])

rows = st.lists(st.integers(0, 599), max_size=12)      # rows of the clustered data; repeats
ids = st.integers(-3, 40) | st.integers(-2**63, 2**63 - 1)     # give ties and equal codes


def assert_brute_force(index, xq, k, xq_codes=None):
    """search(xq, k) ranks the stored codes by Hamming distance to the codes of xq."""
    D, I = index.search(xq, k)
    stored, stored_ids = index.storage.codes(), index.storage.ids()
    q = np.unpackbits(index.sa_encode(xq) if xq_codes is None else xq_codes, axis=1)
    H = (q[:, None, :] != np.unpackbits(stored, axis=1)[None, :, :]).sum(axis=2)
    n = min(k, len(stored_ids))
    np.testing.assert_array_equal(D[:, :n], np.sort(H, axis=1)[:, :n])
    assert (D[:, n:] == SENTINEL).all() and (I[:, n:] == -1).all()
    pos = {i: p for p, i in enumerate(stored_ids.tolist())}
    for qi in range(len(xq)):
        assert len(set(I[qi, :n])) == n                               # no id twice
        assert [H[qi, pos[i]] for i in I[qi, :n]] == D[qi, :n].tolist()  # ids carry those D


@pytest.mark.parametrize("storage", ["flat", "ivf"])
@FAST
@given(stored=rows, stored_ids=st.none() | st.lists(ids, max_size=12, unique=True),
       queries=rows, k=st.integers(1, 20),
       raw=arrays(np.float64, st.tuples(st.integers(0, 3), st.just(32)),
                  elements=st.floats(-1e6, 1e6)))
def test_search_is_brute_force_hamming_ranking(trained, trained_ivf, clustered, storage,
                                               stored, stored_ids, queries, k, raw):
    xb = clustered[0]
    index = copy.deepcopy(trained if storage == "flat" else trained_ivf)
    if stored_ids is None:
        index.add(xb[stored])
    else:
        n = min(len(stored), len(stored_ids))
        stored_ids = [i for i in stored_ids[:n] if i != -1 and i <= MAX_ID]  # both refused
        index.add_with_ids(xb[stored[:len(stored_ids)]], stored_ids)
    assert_brute_force(index, np.concatenate([xb[queries], raw]), k)


class IdSetMachine(RuleBasedStateMachine):
    """Random add / add_with_ids / remove_ids / reset / save and load / pickling / search
    against a dict id -> row of the data."""

    template = None     # the trained index to copy, set by the test
    xb = codes = None   # the clustered data and its codes

    def __init__(self):
        super().__init__()
        self.index = copy.deepcopy(self.template)
        self.model: dict[int, int] = {}
        self.next_id = 0
        self.dir = Path(tempfile.mkdtemp(prefix="biohash-props-"))

    def teardown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(sel=rows)
    def add(self, sel):
        if self.next_id + len(sel) - 1 > MAX_ID:
            with pytest.raises(ValueError, match="largest id"):
                self.index.add(self.xb[sel])
            return
        self.index.add(self.xb[sel])
        for i, r in enumerate(sel):
            self.model[self.next_id + i] = r
        self.next_id += len(sel)

    @rule(sel=rows, new=st.lists(ids, max_size=12))
    def add_with_ids(self, sel, new):
        new = new[:len(sel)]
        sel = sel[:len(new)]
        if len(set(new)) < len(new) or -1 in new or set(new) & self.model.keys() or (
                new and max(new) > MAX_ID):
            with pytest.raises(ValueError, match="distinct|already|-1|<="):
                self.index.add_with_ids(self.xb[sel], new)
            return
        self.index.add_with_ids(self.xb[sel], np.array(new, np.int64))
        self.model.update(zip(new, sel))
        if new:
            self.next_id = max(self.next_id, max(new) + 1)

    @rule(data=st.data())
    def remove_ids(self, data):
        known = st.sampled_from(sorted(self.model)) if self.model else ids
        gone = data.draw(st.lists(known | ids, max_size=8))
        assert self.index.remove_ids(np.array(gone, np.int64)) == len(set(gone) & self.model.keys())
        for i in gone:
            self.model.pop(i, None)

    @rule()
    def reset(self):
        self.index.reset()
        self.model, self.next_id = {}, 0

    @rule()
    def save_and_load(self):        # always the same path: later saves replace earlier ones
        self.index.save(self.dir / "index")
        self.index = BioHashIndex.load(self.dir / "index")

    @rule()
    def pickle_round_trip(self):
        self.index = pickle.loads(pickle.dumps(self.index))

    @invariant()
    def ids_and_codes_match_the_model(self):
        stored = self.index.storage.ids()
        assert self.index.ntotal == len(stored) == len(self.model)
        assert sorted(stored.tolist()) == sorted(self.model)
        expected = self.codes[[self.model[i] for i in stored.tolist()]]
        np.testing.assert_array_equal(self.index.storage.codes(), expected)

    @rule(q=rows, k=st.integers(1, 20))
    def search(self, q, k):
        assert_brute_force(self.index, self.xb[q], k, self.codes[q])


@pytest.mark.parametrize("storage", ["flat", "ivf"])
def test_any_call_sequence_matches_reference_id_set(trained, trained_ivf, clustered, storage):
    IdSetMachine.template = trained if storage == "flat" else trained_ivf
    IdSetMachine.xb = clustered[0]
    IdSetMachine.codes = IdSetMachine.template.sa_encode(clustered[0])
    run_state_machine_as_test(IdSetMachine, settings=settings(
        FAST, max_examples=20, stateful_step_count=12))
