"""biohash-index: learned sparse binary hash codes (BioHash) with the faiss index API.

The public surface is this namespace (``__all__``) and the modules ``biohash_index.store``,
``dask``, ``datasets``, ``evaluation``, ``plots`` and ``cli``; modules whose names begin with
an underscore are private (docs/architecture.md).
"""
import os

# faiss, numba and BLAS each keep a pool of OpenMP/pthreads workers. With libgomp's default
# active wait, idle workers of one pool spin and starve the others: on a busy machine a faiss
# search after a numba kernel ran 10-40x slower. Passive waiting, unless the user chose a
# policy, must be set before faiss loads libgomp.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from ._version import __version__  # noqa: E402
from ._factory import index_factory
from ._formats._io import BioHashFormatError
from ._index import BioHashIndex, deserialize_index, read_index, serialize_index, write_index
from ._model import (TASKS, BioHashModel, BioHashParams, SmallTrainingSetWarning,
                     UntrainedIndexWarning, n_hidden_for, training_rows_needed)
from ._progress import set_progress
from ._refine import BioHashIndexRefine, read_index_refine, write_index_refine

__all__ = ["BioHashIndex", "BioHashModel", "BioHashParams", "BioHashFormatError", "write_index",
           "read_index", "serialize_index", "deserialize_index", "__version__",
           "BioHashIndexRefine", "write_index_refine", "read_index_refine", "index_factory",
           "TASKS", "n_hidden_for", "training_rows_needed", "SmallTrainingSetWarning",
           "UntrainedIndexWarning", "set_progress"]
