"""Parsing path and query parameters the way both official clients send them."""

from __future__ import annotations

import json
import uuid
from typing import Annotated

from fastapi import Header

from cogni_ai_core import LLM_KEY_HEADER
from cogni_server.errors import Invalid

LlmKey = Annotated[str | None, Header(alias=LLM_KEY_HEADER, include_in_schema=False)]
"""The per-account LiteLLM key of the runs a request creates (services/run_keys.py): sealed, never echoed or logged."""


def parse_id(value: str, what: str) -> uuid.UUID:
    """A path or body id that must be a UUID; anything else answers 422 naming it."""
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        raise Invalid(f"{what} must be a UUID, got {value!r}") from None


def parse_ids(values: list[str] | None, what: str) -> list[uuid.UUID] | None:
    return None if values is None else [parse_id(v, what) for v in values]


def query_list(values: list[str] | None, what: str) -> list[str]:
    """A list in the query string, as either client sends it.

    The Python client repeats the parameter (``?select=a&select=b``); the JS client sends one
    JSON-encoded array (``?select=["a","b"]``). Empty values (``?stream_mode=``) mean "not given".
    """
    out: list[str] = []
    for value in values or ():
        text = value.strip()
        if text.startswith("["):
            try:
                items = json.loads(text)
            except ValueError:
                raise Invalid(f"{what} is not a valid JSON array: {value!r}") from None
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise Invalid(f"{what} must be a list of strings, got {value!r}")
            out.extend(i for i in items if i)
        elif text:
            out.append(text)
    return out
