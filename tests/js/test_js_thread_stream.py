"""The official JS client's thread stream (SSE and WebSocket) against a real cogni-server process.

The repo's pinned JS SDK predates thread streams, so this test installs the first release that has
them (``THREAD_STREAM_SDK_VERSION``) into the same cache. Node 20 needs ``--experimental-websocket``
for the global ``WebSocket`` the WebSocket transport uses (from Node 22 it is on by default).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from packages.server.tests.core.conftest import KEY_A, KEY_B, start_server
from packages.server.tests.thread_stream.helpers import THREAD_PROJECT
from testsupport import free_port, fresh_database

from .js_sdk_cache import JsSdkUnavailable, ensure_js_sdk

HERE = Path(__file__).resolve().parent
THREAD_STREAM_SDK_VERSION = "1.15.0"
THREAD_STREAM_EXTRAS = ("@langchain/core@1.4.0",)  # a peer its thread-stream messages import
NODE_TIMEOUT = 180.0

pytestmark = pytest.mark.integration


def _node_flags(node: str) -> list[str]:
    probe = subprocess.run([node, "-e", "process.exit(typeof WebSocket === 'function' ? 0 : 1)"], check=False)
    return [] if probe.returncode == 0 else ["--experimental-websocket"]


def test_official_js_thread_stream() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: the JS client test needs Node.js 20+")
    try:
        sdk = ensure_js_sdk(THREAD_STREAM_SDK_VERSION, THREAD_STREAM_EXTRAS)
    except JsSdkUnavailable as exc:
        pytest.fail(f"cannot install the official JS client: {exc}")
    with fresh_database("cogni_server_js_ts") as db:
        port = free_port()
        proc = start_server(db, port, name="cogni-server-js-ts", project=THREAD_PROJECT)
        try:
            env = {
                **os.environ,
                "COGNI_SERVER_URL": f"http://127.0.0.1:{port}",
                "COGNI_API_KEY": KEY_A,
                "COGNI_OTHER_API_KEY": KEY_B,
                "LANGGRAPH_JS_SDK_DIR": str(sdk),
                "NO_COLOR": "1",
            }
            for var in ("LANGGRAPH_API_KEY", "LANGSMITH_API_KEY", "LANGCHAIN_API_KEY"):
                env.pop(var, None)
            command = [node, *_node_flags(node), "--test", "--test-reporter=spec", str(HERE / "thread_stream.test.mjs")]
            try:
                done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=NODE_TIMEOUT)
            except subprocess.TimeoutExpired as exc:
                pytest.fail(f"node --test did not finish in {NODE_TIMEOUT:.0f}s:\n{exc.stdout!r}\n{exc.stderr!r}")
            if done.returncode != 0:
                pytest.fail(
                    f"node --test failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}\n"
                    f"--- server log ---\n{proc.output()[-4000:]}"
                )
        finally:
            proc.stop()
