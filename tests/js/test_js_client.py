"""The official JS client against a real cogni-server process: `node --test` on its own suites.

The SDK is installed from npm into a cache outside the clone on first use (see ``js_sdk_cache``);
when npm cannot install it the test fails with npm's message rather than skip.
"""

from __future__ import annotations

import pytest

from .node_suite import run_node_suites

# The suites this test owns; the store and thread-stream suites run from their own tests.
CLIENT_SUITES = ("js_client.test.mjs", "js_jobs.test.mjs")

pytestmark = pytest.mark.integration


def test_official_js_client_works_unchanged() -> None:
    run_node_suites(CLIENT_SUITES, name="js")
