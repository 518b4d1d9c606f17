"""A deterministic OpenAI-compatible upstream for tests, benchmarks and the offline demo."""

from cogni_mock_llm.app import create_app
from cogni_mock_llm.settings import MockSettings

__all__ = ["MockSettings", "create_app"]
