"""The official JS client's thread stream (SSE and WebSocket) against a real cogni-server process.

The repo's pinned JS SDK predates thread streams, so this test installs the first release that has
them (``THREAD_STREAM_SDK_VERSION``) into the same cache. Node 20 needs ``--experimental-websocket``
for the global ``WebSocket`` the WebSocket transport uses (from Node 22 it is on by default).
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from packages.server.tests.thread_stream.helpers import THREAD_PROJECT

from .node_suite import run_node_suites

THREAD_STREAM_SDK_VERSION = "1.15.0"
THREAD_STREAM_EXTRAS = ("@langchain/core@1.4.0",)  # a peer its thread-stream messages import

pytestmark = pytest.mark.integration


def _node_flags() -> list[str]:
    node = shutil.which("node") or "node"
    probe = subprocess.run([node, "-e", "process.exit(typeof WebSocket === 'function' ? 0 : 1)"], check=False)
    return [] if probe.returncode == 0 else ["--experimental-websocket"]


def test_official_js_thread_stream() -> None:
    run_node_suites(
        ["thread_stream.test.mjs"],
        name="js-ts",
        timeout=180.0,
        sdk_version=THREAD_STREAM_SDK_VERSION,
        sdk_extras=THREAD_STREAM_EXTRAS,
        project=THREAD_PROJECT,
        node_flags=_node_flags(),
    )
