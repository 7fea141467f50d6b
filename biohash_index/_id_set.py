"""``IdSet``: the ids held by a code storage, so that ``add_with_ids`` can refuse clashes
without reading every stored id.

The ids are kept in a few sorted int64 runs (the logarithmic method): a new batch is
sorted into a run of its own, then neighbouring runs are merged wherever the older is at
most twice the size of the newer, so run sizes more than double from newest to oldest and
there are at most log2(N) + 1 runs. Each id is copied O(log N) times over its life, so
adding a batch of n costs O(n log N) amortized (a single add may merge everything, O(N));
asking which of n ids are stored costs one ``np.searchsorted`` per run, O(n log^2 N).
Removing copies the runs that hold a removed id, O(N) at worst, as faiss's own removal.
Memory: 8 bytes per stored id (while two runs merge, the merged copy exists beside them).
"""
from __future__ import annotations

import numpy as np


class IdSet:
    """A set of distinct int64 ids: ``isin`` for a batch, ``add``, ``remove``, ``clear``.

    ids: int64 (N,) initial ids, in any order; a ValueError if they repeat.
    """

    def __init__(self, ids: np.ndarray | None = None):
        self._runs: list[np.ndarray] = []   # sorted int64 runs, oldest (largest) first
        if ids is not None and len(ids):
            run = np.array(ids, np.int64)
            if not (run[1:] > run[:-1]).all():   # increasing ids (a load) are sorted, distinct
                run.sort()
                repeated = run[1:][run[1:] == run[:-1]]
                if len(repeated):
                    raise ValueError(f"ids must be distinct, got repeated ids: "
                                     f"{np.unique(repeated)[:5].tolist()}")
            self._runs.append(run)

    def __len__(self) -> int:
        return sum(len(run) for run in self._runs)

    @property
    def nbytes(self) -> int:
        """Bytes held: 8 per id."""
        return sum(run.nbytes for run in self._runs)

    def isin(self, ids: np.ndarray) -> np.ndarray:
        """bool (n,): which of the int64 (n,) ids are in the set."""
        found = np.zeros(len(ids), bool)
        for run in self._runs:
            found |= run[np.minimum(np.searchsorted(run, ids), len(run) - 1)] == ids
        return found

    def add(self, ids: np.ndarray) -> None:
        """Add int64 (n,) ids, distinct and none in the set yet (``check_new_ids`` ensures it)."""
        if len(ids):
            self._runs.append(np.sort(ids))
            self._merge_runs()

    def remove(self, ids: np.ndarray) -> None:
        """Remove the int64 (n,) ids that are in the set; others are skipped."""
        runs = []
        for run in self._runs:
            pos = np.minimum(np.searchsorted(run, ids), len(run) - 1)
            hit = run[pos] == ids
            if hit.any():
                run = np.delete(run, pos[hit])
            if len(run):
                runs.append(run)
        self._runs = runs
        self._merge_runs()

    def _merge_runs(self) -> None:
        """Merge neighbouring runs, newest first, until each run is over twice the next."""
        runs = self._runs
        for i in range(len(runs) - 2, -1, -1):
            if len(runs[i]) <= 2 * len(runs[i + 1]):
                merged = np.concatenate([runs[i], runs.pop(i + 1)])
                merged.sort(kind="stable")   # timsort: one linear merge of two sorted halves
                runs[i] = merged

    def clear(self) -> None:
        self._runs = []
