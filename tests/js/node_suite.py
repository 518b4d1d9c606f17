"""Run `node --test` suites of the official JS client against a real cogni-server process.

One helper for every JS test: it installs the SDK (cached outside the clone), starts a server on a
fresh database, runs the suites with the server's URL and keys in the environment, and fails with
node's output and the server's log. Never skips: a missing node or SDK is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from packages.server.tests.core.conftest import KEY_A, KEY_B, PROJECT, start_server
from testsupport import free_port, fresh_database

from .js_sdk_cache import JsSdkUnavailable, ensure_js_sdk

HERE = Path(__file__).resolve().parent


def run_node_suites(
    suites: Sequence[str],
    *,
    name: str,
    timeout: float = 120.0,
    sdk_version: str | None = None,
    sdk_extras: Sequence[str] = (),
    project: Path | None = None,
    node_flags: Sequence[str] = (),
) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: the JS client tests need Node.js 20+")
    try:
        sdk = ensure_js_sdk(sdk_version, tuple(sdk_extras)) if sdk_version else ensure_js_sdk(extras=tuple(sdk_extras))
    except JsSdkUnavailable as exc:
        pytest.fail(f"cannot install the official JS client: {exc}")
    with fresh_database(f"cogni_server_{name.replace('-', '_')}") as db:
        port = free_port()
        proc = start_server(db, port, name=f"cogni-server-{name}", project=project or PROJECT)
        try:
            env = {
                **os.environ,
                "COGNI_SERVER_URL": f"http://127.0.0.1:{port}",
                "COGNI_API_KEY": KEY_A,
                "COGNI_API_KEY_B": KEY_B,
                "COGNI_OTHER_API_KEY": KEY_B,
                "LANGGRAPH_JS_SDK_DIR": str(sdk),
                "NO_COLOR": "1",
            }
            for var in ("LANGGRAPH_API_KEY", "LANGSMITH_API_KEY", "LANGCHAIN_API_KEY"):
                env.pop(var, None)
            command = [node, *node_flags, "--test", "--test-reporter=spec", *(str(HERE / s) for s in suites)]
            try:
                done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
            except subprocess.TimeoutExpired as exc:
                pytest.fail(f"node --test did not finish in {timeout:.0f}s:\n{exc.stdout!r}\n{exc.stderr!r}")
            if done.returncode != 0:
                pytest.fail(
                    f"node --test failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}\n"
                    f"--- server log ---\n{proc.output()[-4000:]}"
                )
        finally:
            proc.stop()
