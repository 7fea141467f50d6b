"""``index_factory``: BioHash indexes from faiss-style description strings.

A description is comma-separated components, as in ``faiss.index_factory``:

| component | meaning |
|---|---|
| ``IDMap``, ``IDMap2`` | optional, first: accepted and ignored (ids are always arbitrary int64) |
| ``BioHash<k>`` | required: k active units per code (``hash_length``) |
| ``BioHash<k>_m<m>`` | ... with m hidden units (``n_hidden``) |
| ``BioHash<k>_a<activity>`` | ... with m = round(k / activity), e.g. ``BioHash16_a0.1`` |
| ``LSH<nbits>[r][t]`` | instead of ``BioHash<k>``: ``BioHash<nbits>`` (see below) |
| ``IVF<nlist>`` | codes in the nlist inverted lists of an ``IndexBinaryIVF``, routed by learned units (``storage="ivf"``) |
| ``RFlat`` | last: keep the float vectors and re-rank, ``BioHashIndexRefine`` |

Examples: ``"BioHash16"``, ``"BioHash16,IVF256"``, ``"BioHash32_m1280,IVF1024,RFlat"``,
``"IDMap,BioHash16"``, ``"LSH16rt,RFlat"`` (= ``"BioHash16,RFlat"``).

faiss's ``LSH`` strings map to BioHash: IndexLSH's nbits is the hash length k (bare ``LSH``
takes nbits = d, faiss's default); the ``r`` (random rotation) and ``t`` (trained thresholds)
flags are ignored, since BioHash learns its projection.
"""
from __future__ import annotations

import re

from ._faiss_compat import check_metric
from ._index import BioHashIndex
from ._refine import BioHashIndexRefine

BIOHASH = re.compile(r"BioHash(\d+)(?:_m(\d+)|_a(\d*\.?\d+))?")
LSH = re.compile(r"LSH(\d*)r?t?")   # faiss's IndexLSH: nbits (default d), rotate, thresholds
IVF = re.compile(r"IVF(\d+)")
ID_MAPS = ("IDMap", "IDMap2")


def index_factory(d: int, description: str, metric: str | int = "l2",
                  **options) -> BioHashIndex | BioHashIndexRefine:
    """Build an empty index from a description (see the module docstring).

    d: input dimension; metric: "l2" or "ip" (or ``faiss.METRIC_L2`` /
    ``faiss.METRIC_INNER_PRODUCT``), used by ``RFlat`` re-ranking only (codes are always
    compared by Hamming distance); options: further ``BioHashIndex`` keywords (``seed``,
    ``epochs``, ``nprobe``, ...). Raises ValueError naming the bad component.
    """
    if not isinstance(description, str):
        raise TypeError(f"description must be a str, got {type(description).__name__}")
    metric = check_metric(metric)
    parts = [p.strip() for p in description.split(",")]
    if parts[0] in ID_MAPS and len(parts) > 1:
        parts = parts[1:]
    k, m, activity = head_component(parts[0], d, description)
    kwargs = {"n_hidden": int(m) if m else None}
    if activity:
        kwargs["activity"] = float(activity)
    refine = parts[-1] == "RFlat"
    for part in parts[1:len(parts) - refine]:
        ivf = IVF.fullmatch(part)
        if ivf is None or "storage" in kwargs:
            raise ValueError(f"unexpected component {part!r} in description {description!r}: "
                             "expected at most one IVF<nlist> and then optionally RFlat")
        kwargs.update(storage="ivf", nlist=int(ivf.group(1)))
    index = BioHashIndex(d, int(k), **kwargs, **options)
    return BioHashIndexRefine(index, metric) if refine else index


def head_component(part: str, d: int, description: str):
    """(k, m or None, activity or None) as strings from ``BioHash...`` or ``LSH...``."""
    head = BIOHASH.fullmatch(part)
    if head is not None:
        return head.groups()
    lsh = LSH.fullmatch(part)
    if lsh is not None:
        return lsh.group(1) or str(d), None, None
    raise ValueError(f"description must start with BioHash<k> (e.g. 'BioHash16' or "
                     f"'BioHash16_m640'), LSH<nbits> or IDMap, got {part!r} in {description!r}")
