"""How LangGraph objects become JSON on the wire: one rule for the server and the app.

The Agent Server serialises graph output with this hook and the app's in-process executor
normalises its chunks with the same one, so a message, an interrupt or a tool call looks the same
whichever side ran the graph (the billing parity tests depend on it). Pure function, no JSON
library here: callers pass it as the ``default`` hook of their encoder (orjson, ``json``).
"""

from __future__ import annotations

import dataclasses
from typing import Any


def wire_default(obj: Any) -> Any:
    """A JSON-ready stand-in for an object the encoder does not know.

    Pydantic models (LangChain messages) become their ``model_dump()``; ``Interrupt`` becomes
    ``{"value", "id"}`` (plus ``response_schema`` when set); other dataclasses their fields; named
    tuples their dict; tuples and sets lists; exceptions ``{"error", "message"}``; bytes text;
    anything else its string form, so one odd value never fails a whole stream.
    """
    dump = getattr(obj, "model_dump", None)
    if callable(dump) and not isinstance(obj, type):
        return dump()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        if type(obj).__name__ == "Interrupt":
            out: dict[str, Any] = {"value": obj.value, "id": obj.id}  # type: ignore[attr-defined]
            schema = getattr(obj, "response_schema", None)
            if schema is not None:
                out["response_schema"] = schema
            return out
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    as_dict = getattr(obj, "_asdict", None)
    if callable(as_dict):
        return as_dict()
    legacy = getattr(obj, "dict", None)
    if callable(legacy) and not isinstance(obj, type | dict):
        return legacy()
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    if isinstance(obj, BaseException):
        return {"error": type(obj).__name__, "message": str(obj)}
    if isinstance(obj, bytes | bytearray):
        return obj.decode(errors="replace")
    return str(obj)
