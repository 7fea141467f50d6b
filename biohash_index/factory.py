"""``index_factory``: BioHash indexes from faiss-style description strings.

A description is comma-separated components, as in ``faiss.index_factory``:

| component | meaning |
|---|---|
| ``BioHash<k>`` | required, first: k active units per code (``hash_length``) |
| ``BioHash<k>_m<m>`` | ... with m hidden units (``n_hidden``) |
| ``BioHash<k>_a<activity>`` | ... with m = round(k / activity), e.g. ``BioHash16_a0.1`` |
| ``IVF<nlist>`` | codes in ``IndexBinaryIVF`` with nlist clusters (``storage="ivf"``) |
| ``RFlat`` | last: keep the float vectors and re-rank, ``BioHashIndexRefine`` |

Examples: ``"BioHash16"``, ``"BioHash16,IVF256"``, ``"BioHash32_m1280,IVF1024,RFlat"``.
"""
from __future__ import annotations

import re

from .index import BioHashIndex
from .refine import METRICS, BioHashIndexRefine

BIOHASH = re.compile(r"BioHash(\d+)(?:_m(\d+)|_a(\d*\.?\d+))?")
IVF = re.compile(r"IVF(\d+)")


def index_factory(d: int, description: str, metric: str = "l2",
                  **options) -> BioHashIndex | BioHashIndexRefine:
    """Build an empty index from a description (see the module docstring).

    d: input dimension; metric: "l2" or "ip", used by ``RFlat`` re-ranking only (codes are
    always compared by Hamming distance); options: further ``BioHashIndex`` keywords
    (``seed``, ``epochs``, ``nprobe``, ...). Raises ValueError naming the bad component.
    """
    if not isinstance(description, str):
        raise TypeError(f"description must be a str, got {type(description).__name__}")
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {tuple(METRICS)}, got {metric!r}")
    parts = [p.strip() for p in description.split(",")]
    head = BIOHASH.fullmatch(parts[0])
    if head is None:
        raise ValueError(f"description must start with BioHash<k> (e.g. 'BioHash16' or "
                         f"'BioHash16_m640'), got {parts[0]!r} in {description!r}")
    k, m, activity = head.groups()
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
