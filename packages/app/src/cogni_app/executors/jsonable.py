"""LangGraph objects -> the JSON shapes the Agent Server puts on the wire, by the same rule the server
uses (``cogni_ai_core.wire_json``), so in-process parts look exactly like the server's parts to the
translator."""

from __future__ import annotations

from typing import Any

import orjson

from cogni_ai_core.wire_json import wire_default


def to_jsonable(value: Any) -> Any:
    """A plain JSON copy of a stream chunk."""
    return orjson.loads(orjson.dumps(value, default=wire_default, option=orjson.OPT_NON_STR_KEYS))
