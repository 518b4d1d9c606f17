"""The official JS client against a real cogni-server process: `node --test tests/js/`.

The SDK is installed from npm into a cache outside the clone on first use (see ``js_sdk_cache``);
when npm cannot install it the test fails with npm's message rather than skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from packages.server.tests.core.conftest import KEY_A, start_server
from testsupport import free_port, fresh_database

from .js_sdk_cache import JsSdkUnavailable, ensure_js_sdk

HERE = Path(__file__).resolve().parent
NODE_TIMEOUT = 120.0
# The suites this test owns; the store and thread-stream suites need other servers and run from their own tests.
CLIENT_SUITES = ("js_client.test.mjs", "js_jobs.test.mjs")

pytestmark = pytest.mark.integration


def test_official_js_client_works_unchanged() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: the JS client test needs Node.js 20+")
    try:
        sdk = ensure_js_sdk()
    except JsSdkUnavailable as exc:
        pytest.fail(f"cannot install the official JS client: {exc}")
    with fresh_database("cogni_server_js") as db:
        port = free_port()
        proc = start_server(db, port, name="cogni-server-js")
        try:
            env = {
                **os.environ,
                "COGNI_SERVER_URL": f"http://127.0.0.1:{port}",
                "COGNI_API_KEY": KEY_A,
                "LANGGRAPH_JS_SDK_DIR": str(sdk),
                "NO_COLOR": "1",
            }
            for var in ("LANGGRAPH_API_KEY", "LANGSMITH_API_KEY", "LANGCHAIN_API_KEY"):
                env.pop(var, None)
            command = [node, "--test", "--test-reporter=spec", *(str(HERE / name) for name in CLIENT_SUITES)]
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
