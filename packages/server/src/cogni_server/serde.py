"""JSON for the wire and the database: orjson plus the conventions of LangGraph's own serializer.

Messages and other pydantic models become their ``model_dump()`` dicts (``type``, ``content``, ``id``,
``tool_calls``...), ``Interrupt`` becomes ``{"value", "id"}``, tuples and sets become lists, and
anything else falls back to its string form rather than failing a whole stream.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import orjson

_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_SERIALIZE_NUMPY


def _default(obj: Any) -> Any:
    if hasattr(obj, "model_dump") and callable(obj.model_dump) and not isinstance(obj, type):
        return obj.model_dump()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        name = type(obj).__name__
        if name == "Interrupt":
            out: dict[str, Any] = {"value": obj.value, "id": obj.id}  # type: ignore[attr-defined]
            schema = getattr(obj, "response_schema", None)
            if schema is not None:
                out["response_schema"] = schema
            return out
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if hasattr(obj, "_asdict"):
        return obj._asdict()
    if hasattr(obj, "dict") and callable(obj.dict) and not isinstance(obj, type):
        return obj.dict()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, BaseException):
        return {"error": type(obj).__name__, "message": str(obj)}
    if isinstance(obj, bytes | bytearray):
        return obj.decode(errors="replace")
    return str(obj)


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


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def to_jsonable(value: Any) -> Any:
    """A plain JSON-compatible copy (for jsonb columns)."""
    return orjson.loads(dumps(value))
