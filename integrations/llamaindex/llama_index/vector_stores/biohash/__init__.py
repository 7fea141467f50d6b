"""llama-index-vector-stores-biohash: a LlamaIndex vector store on BioHash codes."""
from llama_index.vector_stores.biohash.base import BioHashVectorStore

__version__ = "0.1.0"
__all__ = ["BioHashVectorStore", "__version__"]
