"""langchain-biohash: a LangChain vector store on BioHash codes (biohash-index)."""
from .vectorstores import BioHashVectorStore

__version__ = "0.1.0"
__all__ = ["BioHashVectorStore", "__version__"]
