"""biohash-index: learned sparse binary hash codes (BioHash) with the faiss index API."""
from .factory import index_factory
from .index import BioHashIndex
from .model import BioHashModel, BioHashParams
from .persistence import (BioHashFormatError, deserialize_index, read_index, serialize_index,
                          write_index)
from .refine import BioHashIndexRefine

__version__ = "0.1.0"
__all__ = ["BioHashIndex", "BioHashModel", "BioHashParams", "BioHashFormatError", "write_index",
           "read_index", "serialize_index", "deserialize_index", "__version__",
           "BioHashIndexRefine", "index_factory"]
