"""biohash-index: learned sparse binary hash codes (BioHash) with the faiss index API."""
from .factory import index_factory
from .index import BioHashIndex
from .model import BioHashModel, BioHashParams
from .refine import BioHashIndexRefine

__version__ = "0.1.0"
__all__ = ["BioHashIndex", "BioHashModel", "BioHashParams", "__version__",
           "BioHashIndexRefine", "index_factory"]
