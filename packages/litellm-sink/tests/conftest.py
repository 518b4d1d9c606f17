"""Session-wide fixtures: one mock + LiteLLM proxy + sink database shared by all proxy tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testsupport.llm_stack import LlmStack, running_llm_stack


@pytest.fixture(scope="session")
def llm_stack() -> Iterator[LlmStack]:
    with running_llm_stack() as stack:
        yield stack
