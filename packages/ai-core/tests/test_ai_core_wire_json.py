"""The one wire rule both the server and the app serialise LangGraph objects with."""

from __future__ import annotations

import dataclasses
import json
from collections import namedtuple
from typing import Any

from pydantic import BaseModel

from cogni_ai_core.wire_json import wire_default


class Message(BaseModel):
    type: str
    content: str


@dataclasses.dataclass
class Interrupt:
    value: Any
    id: str


@dataclasses.dataclass
class Plain:
    a: int


def encode(value: Any) -> Any:
    return json.loads(json.dumps(value, default=wire_default))


def test_known_shapes() -> None:
    pair = namedtuple("pair", "x y")
    assert encode({"m": Message(type="ai", content="hi")}) == {"m": {"type": "ai", "content": "hi"}}
    assert encode(Interrupt("ask", "i1")) == {"value": "ask", "id": "i1"}
    assert encode(Plain(1)) == {"a": 1}
    assert encode({1, 2}) in ([1, 2], [2, 1])
    assert encode(ValueError("bad")) == {"error": "ValueError", "message": "bad"}
    assert encode(b"raw") == "raw"
    assert encode(pair(1, 2)) == [1, 2]  # json encodes tuples itself; wire_default sees other objects
    assert wire_default(pair(1, 2)) == {"x": 1, "y": 2}
    assert encode(object()).startswith("<object object")
