"""Where tests and benchmarks find the team's benchmark data: ``DATA``, the one lookup.

The data sits beside the repository (``../shared/data``); the BIOHASH_DATA environment
variable may point elsewhere. The package itself never reads it. No imports beyond the
standard library, so that the tests can import this before faiss is loaded.
"""
import os
from pathlib import Path

DATA = Path(os.environ.get("BIOHASH_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
GET_DATA = "python benchmarks/get_data.py"   # downloads the public sets into DATA


def not_available(path) -> str:
    """What to say where a test or benchmark finds no data at ``path``."""
    return f"benchmark data not available: {path} ({GET_DATA} downloads it)"
