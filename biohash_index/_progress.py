"""Optional tqdm progress bars on long loops (training epochs, encoding large inputs).

Bars are automatic by default: shown when tqdm is installed and stderr is a terminal, and
only for loops that run longer than ``DELAY`` seconds. ``set_progress(False)`` turns them off
(the command's ``--quiet``), ``set_progress(True)`` on even when stderr is not a terminal.
"""
from __future__ import annotations

import functools
import sys
from typing import Iterable, TypeVar

T = TypeVar("T")

DELAY = 1.0  # seconds a loop runs before its bar appears
_enabled: bool | None = None  # None: automatic


def set_progress(enabled: bool | None) -> None:
    """Progress bars on (True), off (False) or automatic (None, the default)."""
    global _enabled
    if enabled is not None and not isinstance(enabled, bool):
        raise TypeError(f"enabled must be True, False or None, got {enabled!r}")
    if enabled and not _have_tqdm():
        raise ImportError("progress bars need tqdm: pip install 'biohash-index[progress]'")
    _enabled = enabled


def progress_enabled() -> bool:
    """Whether ``progress`` draws bars now."""
    if _enabled is None:
        return _have_tqdm() and sys.stderr is not None and sys.stderr.isatty()
    return _enabled


def progress(iterable: Iterable[T], desc: str, unit: str = "it",
             total: int | None = None) -> Iterable[T]:
    """``iterable`` in a tqdm bar (on stderr, cleared when done) if bars are enabled, else
    ``iterable`` itself."""
    if not progress_enabled():
        return iterable
    from tqdm import tqdm
    return tqdm(iterable, desc=desc, unit=unit, total=total, leave=False, delay=DELAY)


@functools.cache
def _have_tqdm() -> bool:
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True
