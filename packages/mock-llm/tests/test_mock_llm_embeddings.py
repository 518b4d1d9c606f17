"""`/v1/embeddings` through the official `openai` client (in-process): deterministic unit vectors."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

import httpx2
import openai
import pytest
from openai import AsyncOpenAI

from cogni_mock_llm import create_app
from cogni_mock_llm.embeddings import DEFAULT_DIMENSIONS, embed_text


@pytest.fixture
async def client() -> AsyncIterator[AsyncOpenAI]:
    transport = httpx2.ASGITransport(app=create_app())
    http = httpx2.AsyncClient(transport=transport, base_url="http://mock")
    async with AsyncOpenAI(base_url="http://mock/v1", api_key="any", http_client=http, max_retries=0) as c:
        yield c


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


async def test_same_text_same_unit_vector_in_both_encodings(client: AsyncOpenAI) -> None:
    texts = ["the blue ocean", "the blue ocean", "red desert sand"]
    as_base64 = await client.embeddings.create(model="text-embedding-3-small", input=texts)  # client default
    as_float = await client.embeddings.create(model="text-embedding-3-small", input=texts, encoding_format="float")
    assert [d.index for d in as_float.data] == [0, 1, 2]
    vectors = [d.embedding for d in as_float.data]
    assert all(len(v) == DEFAULT_DIMENSIONS for v in vectors)
    assert all(math.isclose(math.sqrt(sum(x * x for x in v)), 1.0, rel_tol=1e-9) for v in vectors)
    assert vectors[0] == vectors[1] == embed_text("the blue ocean")
    for decoded, exact in zip((d.embedding for d in as_base64.data), vectors, strict=True):
        assert decoded == pytest.approx(exact, abs=1e-6)  # float32 on the wire
    assert as_float.model == "text-embedding-3-small"
    assert as_float.usage.prompt_tokens == 9 and as_float.usage.total_tokens == 9


async def test_shared_words_are_closer_than_unrelated_text(client: AsyncOpenAI) -> None:
    got = await client.embeddings.create(
        model="m", input=["blue ocean", "the blue ocean waves", "red desert sand"], dimensions=256
    )
    query, near, far = (d.embedding for d in got.data)
    assert len(query) == 256
    assert _cosine(query, near) > 0.5 > _cosine(query, far)


async def test_text_without_words_still_gets_a_unit_vector(client: AsyncOpenAI) -> None:
    got = await client.embeddings.create(model="m", input=["", "!!!"], dimensions=8, encoding_format="float")
    for item in got.data:
        assert math.isclose(sum(x * x for x in item.embedding), 1.0)


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"input": []}, "input"),
        ({"input": [1, 2]}, "input"),
        ({"input": "x", "dimensions": 0}, "dimensions"),
        ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
    ],
)
async def test_bad_requests_answer_400_naming_the_parameter(
    client: AsyncOpenAI, kwargs: dict[str, object], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.embeddings.create(model="m", **kwargs)  # type: ignore[arg-type]
    assert caught.value.param == param
