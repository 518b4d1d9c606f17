"""Serve a small ASGI app (a fake upstream, a recording relay) on loopback for the length of a test.

uvicorn runs in a daemon thread with its own event loop, so the same helper works from sync and
async tests and from session-scoped fixtures that outlive one test's event loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import uvicorn

from testsupport.ports import free_port


@contextmanager
def serve_asgi(
    app: Any,
    *,
    port: int | None = None,
    lifespan: Literal["auto", "on", "off"] = "auto",
    name: str = "asgi-test-server",
    start_timeout: float = 15.0,
) -> Iterator[str]:
    """Run `app` on 127.0.0.1 and yield its base URL (`http://127.0.0.1:PORT`); stop it on exit."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + start_timeout
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError(f"{name} did not start on port {port}")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
