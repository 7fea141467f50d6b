"""biohash-index: learned sparse binary hash codes (BioHash) with the faiss index API."""
import os

# faiss, numba and BLAS each keep a pool of OpenMP/pthreads workers. With libgomp's default
# active wait, idle workers of one pool spin and starve the others: on a busy machine a faiss
# search after a numba kernel ran 10-40x slower. Passive waiting, unless the user chose a
# policy, must be set before faiss loads libgomp.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from ._version import __version__  # noqa: E402
from .factory import index_factory
from .files import BioHashFormatError
from .index import BioHashIndex, deserialize_index, read_index, serialize_index, write_index
from .model import BioHashModel, BioHashParams
from .refine import BioHashIndexRefine

__all__ = ["BioHashIndex", "BioHashModel", "BioHashParams", "BioHashFormatError", "write_index",
           "read_index", "serialize_index", "deserialize_index", "__version__",
           "BioHashIndexRefine", "index_factory"]
