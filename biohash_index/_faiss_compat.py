"""The faiss idioms the indexes accept: metric constants, ``IDSelector``s, search parameters,
preallocated result arrays, and a clear word where faiss's own functions are handed an index.

BioHash indexes are Python objects that hold faiss binary indexes; they are not faiss C++
indexes themselves, so ``faiss.write_index(index, ...)``, ``faiss.IndexIDMap(index)`` and the
like cannot take them (``NotAFaissIndex`` says so and names the call to use instead).
"""
from __future__ import annotations

import numbers
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import faiss
import numpy as np

from ._validation import check_k, check_positive_int

FAISS_METRICS = {"l2": faiss.METRIC_L2, "ip": faiss.METRIC_INNER_PRODUCT}

NOT_A_FAISS_INDEX = (
    "{cls} is a Python object, not a faiss C++ index, so faiss's own functions cannot take it "
    "(SWIG's 'Wrong number or type of arguments' error follows). Instead of "
    "faiss.write_index / read_index: biohash_index.write_index(index, path) and read_index(path) "
    "(one file for a path such as 'index.faiss', as faiss writes; a directory for an existing "
    "directory or a path ending in '/'); instead of faiss.IndexIDMap / IndexIDMap2: nothing, ids "
    "are already arbitrary int64 (add_with_ids) and reconstruct takes them, or "
    "biohash_index.index_factory(d, 'IDMap2,BioHash64'); instead of faiss.clone_index: "
    "copy.deepcopy(index); for exact re-ranking: BioHashIndexRefine or "
    "index_factory(d, 'BioHash16,RFlat')")
# IndexLSH's attributes that have no counterpart here, and what to use instead
INDEX_LSH_ONLY = {
    "rotate_data": "BioHash always projects: index.model.weights_ (n_hidden, d) applied to "
                   "x - index.model.mean_",
    "rrot": "BioHash's projection is index.model.weights_ (n_hidden, d), applied to "
            "x - index.model.mean_",
    "train_thresholds": "BioHash keeps the hash_length most active units of each code instead "
                        "of thresholding every bit; training learns the mean it subtracts, "
                        "index.model.mean_",
    "thresholds": "BioHash keeps the hash_length most active units of each code instead of "
                  "thresholding every bit; training learns the mean it subtracts, "
                  "index.model.mean_",
}


def index_lsh_arguments(n_hidden, activity):
    """(n_hidden, activity), with IndexLSH's positional flags taken out.

    ``IndexLSH(d, nbits, rotate_data, train_thresholds)`` passes bools where ``BioHashIndex(d,
    hash_length, n_hidden, activity)`` takes its third and fourth arguments; a bool is never
    a valid n_hidden or activity, so ``BioHashIndex(d, nbits, False)`` or ``(d, nbits, True,
    True)`` reads as IndexLSH's call, and the flags are ignored: they choose how IndexLSH
    makes its fixed projection, which BioHash's model replaces. A bool after a number (or a
    number after a bool) is refused with a TypeError.
    """
    flags = [isinstance(v, (bool, np.bool_)) for v in (n_hidden, activity)]
    if flags[0] and (flags[1] or activity is None):
        return None, None
    if any(flags):
        raise TypeError(f"BioHashIndex(d, hash_length, n_hidden, activity) got n_hidden="
                        f"{n_hidden!r}, activity={activity!r}: give both of IndexLSH's flags "
                        "(rotate_data, train_thresholds, ignored here) or neither, or name "
                        "n_hidden= and activity= with numbers")
    return n_hidden, activity


def stacklevel_outside(prefix: str) -> int:
    """The ``stacklevel`` at which ``warnings.warn``, called by the caller of this function,
    points at the first frame whose module is not named ``prefix...``."""
    level, frame = 2, sys._getframe(2)
    while frame is not None and frame.f_globals.get("__name__", "").startswith(prefix):
        level, frame = level + 1, frame.f_back
    return level


def check_metric(metric) -> str:
    """"l2" or "ip" from those names or faiss's ``METRIC_L2`` / ``METRIC_INNER_PRODUCT``."""
    if isinstance(metric, str) and metric.lower() in FAISS_METRICS:
        return metric.lower()
    if isinstance(metric, numbers.Integral) and not isinstance(metric, (bool, np.bool_)):
        for name, value in FAISS_METRICS.items():
            if metric == value:
                return name
    raise ValueError(f"metric must be 'l2' or 'ip' (or faiss.METRIC_L2 = {faiss.METRIC_L2}, "
                     f"faiss.METRIC_INNER_PRODUCT = {faiss.METRIC_INNER_PRODUCT}), got {metric!r}")


def selected_ids(selector: faiss.IDSelector, ids: np.ndarray) -> np.ndarray:
    """The int64 ids among ``ids`` (int64 (n,)) that a ``faiss.IDSelector`` selects.

    faiss itself decides, for every kind of selector (range, batch, array, bitmap, not/and/or):
    the ids go into a scratch ``IndexBinaryIDMap`` of 1-byte codes, whose ``remove_ids``
    drops the selected ones (9 bytes per id, native speed; ``is_member`` from Python would
    cost microseconds per id).
    """
    scratch = faiss.IndexBinaryIDMap(faiss.IndexBinaryFlat(8))
    scratch.add_with_ids(np.zeros((len(ids), 1), np.uint8), ids)
    scratch.remove_ids(selector)
    kept = faiss.vector_to_array(scratch.id_map)
    return ids[~np.isin(ids, kept)]


@dataclass(frozen=True)
class SearchOptions:
    """One search's options, as faiss's search parameters give them: nprobe, lists probed
    per query (None: the index's); max_codes, codes scanned before probing stops (0: no
    limit); sel, a ``faiss.IDSelector`` (None: every id); and BioHash's own, shortlist, the
    Hamming candidates per query that asymmetric scoring re-ranks (None: ``_search``'s
    default, 8 k and at least 64)."""
    nprobe: int | None = None
    max_codes: int = 0
    sel: faiss.IDSelector | None = None
    shortlist: int | None = None


def search_options(params, ivf: bool) -> SearchOptions:
    """The ``SearchOptions`` of ``params``: None, a ``faiss.SearchParameters`` (such as
    ``SearchParametersIVF(nprobe=16)``, whose nprobe defaults to 1 as in faiss), a dict
    of their fields (``{"nprobe": 16}``; missing fields keep the index's settings) and
    ``"shortlist"``, or ``SearchOptions`` already checked (returned as they are).

    ivf: whether the storage is IVF; nprobe and max_codes apply to IVF only (flat and
    inverted storage search every code); ``sel`` (an IDSelector: search only those ids) and
    ``shortlist`` to every storage.
    """
    if params is None:
        return SearchOptions()
    if isinstance(params, SearchOptions):
        return params
    if isinstance(params, Mapping):
        unknown = set(params) - {"nprobe", "max_codes", "sel", "shortlist"}
        if unknown:
            raise ValueError(f"params: unknown fields {sorted(unknown)}; expected nprobe, "
                             "max_codes (IVF storage), sel (a faiss.IDSelector) or shortlist")
        fields = dict(params)
    elif type(params) is faiss.SearchParametersIVF:
        fields = {"nprobe": params.nprobe, "max_codes": params.max_codes, "sel": params.sel}
    elif type(params) is faiss.SearchParameters:
        fields = {"sel": params.sel}
    else:
        raise TypeError("params must be a faiss.SearchParameters, a faiss.SearchParametersIVF "
                        f"or a dict of their fields, got {type(params).__name__}")
    if not ivf and set(fields) - {"sel", "shortlist"}:
        raise ValueError(f"params {sorted(set(fields) - {'sel', 'shortlist'})} apply to "
                         "storage='ivf' only: flat and inverted storage search every code")
    sel = fields.get("sel")
    if sel is not None and not isinstance(sel, faiss.IDSelector):
        raise TypeError(f"params['sel'] must be a faiss.IDSelector, got {type(sel).__name__}")
    nprobe, shortlist = fields.get("nprobe"), fields.get("shortlist")
    return SearchOptions(
        nprobe=None if nprobe is None else check_positive_int(nprobe, "params['nprobe']"),
        max_codes=check_positive_int(fields.get("max_codes", 0), "params['max_codes']",
                                     minimum=0),
        sel=sel,
        shortlist=None if shortlist is None else check_positive_int(shortlist,
                                                                    "params['shortlist']"))


def result_arrays(D, I, shape: tuple[int, int]):
    """Preallocated outputs for ``search(..., D=, I=)``: each None (a new array) or a
    writable array of exactly ``shape`` and dtype (float32 D, int64 I), as faiss checks.
    A new array is allocated only if the (nq, k) search fits in memory (``check_k``)."""
    if D is None or I is None:
        check_k(shape[1], shape[0])
    out = []
    for name, arr, want in (("D", D, np.dtype(np.float32)), ("I", I, np.dtype(np.int64))):
        if arr is None:
            arr = np.empty(shape, want)
        elif not isinstance(arr, np.ndarray):
            raise TypeError(f"{name} must be a numpy array, got {type(arr).__name__}")
        elif arr.dtype != want:
            raise TypeError(f"{name} must have dtype {want}, got {arr.dtype}")
        elif arr.shape != shape:
            raise ValueError(f"{name} must have shape (nq, k) = {shape}, got {arr.shape}")
        elif not arr.flags.writeable:
            raise ValueError(f"{name} must be writable")
        out.append(arr)
    return out


class NotAFaissIndex:
    """Mixin: faiss's SWIG layer looks up ``this`` on any object it is given, to find the
    C++ object behind it. There is none, and SWIG discards any exception raised here and then
    lists C++ prototypes; so the lookup warns with what to do instead, just before that error.
    """

    @property
    def this(self):   # the warning points at the caller of faiss
        warnings.warn(NOT_A_FAISS_INDEX.format(cls=type(self).__name__),
                      stacklevel=stacklevel_outside("faiss"))
        raise AttributeError(f"{type(self).__name__} has no faiss C++ object ('this')")
