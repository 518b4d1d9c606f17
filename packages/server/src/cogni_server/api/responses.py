"""The JSON response class every route answers with."""

from __future__ import annotations

from typing import Any

from fastapi.responses import Response

from cogni_server.serde import dumps


class JSONResponse(Response):
    """orjson with LangGraph's conventions (messages, interrupts, datetimes)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)
