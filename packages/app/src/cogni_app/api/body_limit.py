"""Request body limit: a body over `max_bytes` is answered 413, never read into memory.

A declared Content-Length over the limit is refused before the app runs. A body without one (chunked
transfer encoding) is counted while the app reads it; the read that crosses the limit fails, and whatever
the app answers to that failure (FastAPI answers a body it could not read with 400) is replaced by the 413.
"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(Exception):
    """Raised into the app by the limited `receive` once the body crosses the limit."""


class BodyLimit:
    """ASGI middleware enforcing COGNI_MAX_REQUEST_BODY_BYTES on every HTTP request."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _declared_too_large(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    return int(value) > self.max_bytes
                except ValueError:
                    return False
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._declared_too_large(scope):
            await self._refuse(send)
            return
        state = {"read": 0, "over": False, "answered": False}

        async def counted_receive() -> Message:
            if state["over"]:
                raise BodyTooLarge
            message = await receive()
            if message["type"] == "http.request":
                state["read"] += len(message.get("body", b""))
                if state["read"] > self.max_bytes:
                    state["over"] = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            if state["over"]:  # the app answered its own failed read: the client gets the 413 instead
                if message["type"] == "http.response.start" and not state["answered"]:
                    state["answered"] = True
                    await self._refuse(send)
                return
            if message["type"] == "http.response.start":
                state["answered"] = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except BodyTooLarge:
            if not state["answered"]:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = orjson.dumps(
            {
                "error": "payload_too_large",
                "message": f"request body exceeds the limit of {self.max_bytes} bytes (COGNI_MAX_REQUEST_BODY_BYTES)",
            }
        )
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
