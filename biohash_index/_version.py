"""The library's version, written into every saved index (a leaf: imports nothing)."""
__version__ = "0.1.0"
