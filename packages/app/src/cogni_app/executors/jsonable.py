"""LangGraph objects -> the JSON shapes the Agent Server puts on the wire (messages as `model_dump()`)."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson


def _default(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)
    if callable(dump) and not isinstance(obj, type):
        return dump()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    if isinstance(obj, BaseException):
        return {"error": type(obj).__name__, "message": str(obj)}
    return str(obj)


def to_jsonable(value: Any) -> Any:
    """A plain JSON copy, so in-process parts look exactly like the server's parts to the translator."""
    return orjson.loads(orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS))
