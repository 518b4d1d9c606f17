"""`/v1/embeddings`: deterministic vectors, so semantic search can be tested offline.

Each text becomes a hashed bag of words: every lower-cased word adds +1 or -1 (both from its SHA-256)
to one of `dimensions` buckets, and the sum is scaled to unit length. The same text always gives the
same vector, texts sharing words point the same way (cosine similarity > 0), and a text with no
word falls back to the hash of the whole string, so no vector is ever zero.

Request: `{"model", "input": str | [str], "dimensions"?: int, "encoding_format"?: "float" | "base64"}`
(the `openai` client asks for base64 unless told otherwise; LiteLLM's proxy uses that client).
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import struct
from typing import Any

DEFAULT_DIMENSIONS = 64
MAX_DIMENSIONS = 4096
MAX_INPUTS = 2048
_WORD = re.compile(r"\w+")


class EmbeddingRequestError(ValueError):
    """The request is not a valid embeddings request (answered 400 naming `param`)."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


def _bucket(token: str, dimensions: int) -> tuple[int, float]:
    digest = hashlib.sha256(token.encode()).digest()
    index = int.from_bytes(digest[:8], "big") % dimensions
    sign = 1.0 if digest[8] & 1 else -1.0
    return index, sign


def embed_text(text: str, dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """The unit vector of `text` (see the module docstring)."""
    vector = [0.0] * dimensions
    tokens = _WORD.findall(text.lower()) or [text]
    for token in tokens:
        index, sign = _bucket(token, dimensions)
        vector[index] += sign
    norm = math.sqrt(sum(x * x for x in vector))
    if norm == 0.0:  # the words cancelled out: fall back to the whole text
        index, sign = _bucket("\x00" + text, dimensions)
        vector[index], norm = sign, 1.0
    return [x / norm for x in vector]


def _inputs(body: dict[str, Any]) -> list[str]:
    raw = body.get("input")
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and raw and all(isinstance(item, str) for item in raw):
        if len(raw) > MAX_INPUTS:
            raise EmbeddingRequestError(f"'input' may hold at most {MAX_INPUTS} strings", "input")
        return raw
    raise EmbeddingRequestError("'input' must be a string or a non-empty list of strings", "input")


def _dimensions(body: dict[str, Any]) -> int:
    value = body.get("dimensions")
    if value is None:
        return DEFAULT_DIMENSIONS
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DIMENSIONS:
        raise EmbeddingRequestError(f"'dimensions' must be an integer from 1 to {MAX_DIMENSIONS}", "dimensions")
    return value


def _encode(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


def embeddings_body(body: Any) -> dict[str, Any]:
    """The OpenAI response for an embeddings request body; EmbeddingRequestError when invalid."""
    if not isinstance(body, dict):
        raise EmbeddingRequestError("the request body must be a JSON object", "input")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise EmbeddingRequestError("'model' is required", "model")
    texts = _inputs(body)
    dimensions = _dimensions(body)
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise EmbeddingRequestError("'encoding_format' must be 'float' or 'base64'", "encoding_format")
    tokens = sum(max(1, len(_WORD.findall(text))) for text in texts)
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": _encode(embed_text(text, dimensions), encoding)}
            for i, text in enumerate(texts)
        ],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
