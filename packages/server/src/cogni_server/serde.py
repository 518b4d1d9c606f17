"""JSON for the wire and the database: orjson with the shared wire rule of ``cogni_ai_core.wire_json``
(messages as their ``model_dump()``, ``Interrupt`` as ``{"value", "id"}``, tuples and sets as lists,
anything else its string form rather than failing a whole stream)."""

from __future__ import annotations

import json
from typing import Any

import orjson

from cogni_ai_core.wire_json import wire_default

_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_SERIALIZE_NUMPY


_default = wire_default


class UnstorableJson(ValueError):
    """A request carried JSON we cannot store faithfully: an integer beyond 64 bits, or a string
    with a lone UTF-16 surrogate (not valid Unicode)."""


def dumps(value: Any) -> bytes:
    """Serialize for the wire; never raises on odd objects inside graph state.

    orjson refuses integers beyond 64 bits and strings with lone surrogates; graph state may hold
    them, so those fall back to the standard library (slower, rare).
    """
    try:
        return orjson.dumps(value, default=_default, option=_OPTS)
    except TypeError as exc:
        if "64-bit" not in str(exc) and "surrogates" not in str(exc):
            raise
        # the standard library writes big integers exactly and escapes lone surrogates
        return json.dumps(value, default=_default, separators=(",", ":")).encode()


def dumps_for_db(value: Any) -> str:
    """Serialize a jsonb parameter; what orjson refuses raises ``UnstorableJson`` (answered 422).

    Integers beyond 64 bits would come back as floats and lone surrogates are not Unicode, so we
    refuse them rather than silently change the data.
    """
    try:
        return orjson.dumps(value, default=_default, option=_OPTS).decode()
    except TypeError as exc:
        if "64-bit" in str(exc):
            raise UnstorableJson("JSON integers must fit in 64 bits") from None
        if "UTF-8" in str(exc) or "surrogate" in str(exc):
            raise UnstorableJson("JSON strings must be valid Unicode (no lone surrogates)") from None
        raise


MAX_JSON_DEPTH = 100  # request JSON nesting we accept (orjson, and so storage, stops at 255)
TOO_DEEP = f"request JSON is nested more than {MAX_JSON_DEPTH} levels deep; that is the limit"


def json_depth_exceeds(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when ``value`` nests dicts and lists more than ``limit`` levels deep (the value itself
    is level 1). Iterative, so a hostile depth cannot exhaust the Python stack."""
    if not isinstance(value, dict | list):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def to_jsonable(value: Any) -> Any:
    """A plain JSON-compatible copy (for jsonb columns)."""
    return orjson.loads(dumps(value))
