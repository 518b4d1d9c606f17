"""Shared by the fault tests (issue 12): the fault fixture project and a server started on it."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from pathlib import Path

from testsupport import ManagedProcess, free_port

from .conftest import start_server

FAULTS_PROJECT = Path(__file__).resolve().parent.parent / "fixtures" / "faults" / "langgraph.json"


def start_faults_server(database_url: str, port: int, *, name: str, **env: str) -> ManagedProcess:
    """A server on the fault graphs (``billing_probe``, ``recorder``, ``ticker``); the last
    ``--config`` wins over the core project's."""
    return start_server(database_url, port, "--config", str(FAULTS_PROJECT), name=name, **env)


class TcpProxy:
    """A loopback TCP proxy in a background thread that a test can cut (every connection dropped,
    new ones closed at once) and restore: a network fault between the server and a backend."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._cut = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tcp-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the TCP proxy did not start")

    @property
    def url_host_port(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
            self._ready.set()
            async with self._server:
                await self._server.serve_forever()

        with contextlib.suppress(asyncio.CancelledError, RuntimeError):
            self._loop.run_until_complete(main())

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    def cut(self) -> None:
        """Drop every connection and refuse new ones until ``restore``."""

        def drop() -> None:
            self._cut = True
            for w in list(self._writers):
                with contextlib.suppress(Exception):
                    w.transport.abort()

        self._loop.call_soon_threadsafe(drop)
        time.sleep(0.1)

    def restore(self) -> None:
        self._loop.call_soon_threadsafe(setattr, self, "_cut", False)
        time.sleep(0.1)

    def close(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._server.close)
        self._thread.join(timeout=5)
