"""langchain's own standard suite for vector stores, sync and async."""
import pytest

pytest.importorskip("langchain_tests")
pytest.importorskip("langchain_biohash", reason="install integrations/langchain")

from langchain_tests.integration_tests import VectorStoreIntegrationTests  # noqa: E402

from langchain_biohash import BioHashVectorStore  # noqa: E402


class TestBioHashVectorStoreStandard(VectorStoreIntegrationTests):
    @pytest.fixture()
    def vectorstore(self):
        """An empty store; a fresh one per test."""
        return BioHashVectorStore(embedding=self.get_embeddings())
