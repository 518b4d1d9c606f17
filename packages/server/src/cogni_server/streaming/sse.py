"""Server-sent events encoding in the exact wire format of the reference server (CRLF lines)."""

from __future__ import annotations

HEARTBEAT = b": heartbeat\r\n\r\n"


def encode_sse(event: str, data: bytes, event_id: str | None) -> bytes:
    """One SSE frame: ``event:``, ``data:`` (one line per data line) and ``id:`` when resumable."""
    if b"\n" in data or b"\r" in data:
        lines = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        body = b"".join(b"data: " + line + b"\r\n" for line in lines)
    else:
        body = b"data: " + data + b"\r\n"
    frame = b"event: " + event.encode() + b"\r\n" + body
    if event_id is not None:
        frame += b"id: " + event_id.encode() + b"\r\n"
    return frame + b"\r\n"
