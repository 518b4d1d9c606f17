"""The mock as a real process (`python -m cogni_mock_llm`): hangs trip client timeouts, defaults apply."""

from __future__ import annotations

import time
from collections.abc import Iterator

import openai
import pytest
from openai import OpenAI

from testsupport import ManagedProcess, free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    port = free_port()
    proc = ManagedProcess.python_module(
        "cogni_mock_llm", "--port", str(port), "--hang-seconds", "3", "--token-delay-ms", "1", name="mock-llm"
    )
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/health", timeout=30)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.stop()


def test_hang_trips_the_client_timeout(base_url: str) -> None:
    client = OpenAI(base_url=base_url, api_key="any", max_retries=0, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x [mock:hang]"}])
    assert time.monotonic() - started < 3


def test_hang_after_streams_some_tokens_then_stalls(base_url: str) -> None:
    client = OpenAI(base_url=base_url, api_key="any", max_retries=0, timeout=0.7)
    received = ""
    with pytest.raises(openai.APITimeoutError):
        stream = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "one two three [mock:hang_after=2]"}], stream=True
        )
        for chunk in stream:
            received += chunk.choices[0].delta.content or ""
    assert received == "You said:"


def test_cli_default_token_delay_applies(base_url: str) -> None:
    client = OpenAI(base_url=base_url, api_key="any", max_retries=0, timeout=10)
    started = time.monotonic()
    completion = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "[mock:tokens=200]"}])
    assert completion.usage is not None and completion.usage.completion_tokens == 200
    assert time.monotonic() - started >= 0.2  # 200 tokens x 1 ms
