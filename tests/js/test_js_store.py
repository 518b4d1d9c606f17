"""The official JS client's store methods against a real cogni-server: `node --test js_store.test.mjs`."""

from __future__ import annotations

import pytest

from .node_suite import run_node_suites

pytestmark = pytest.mark.integration


def test_official_js_client_store_methods() -> None:
    run_node_suites(["js_store.test.mjs"], name="js-store")
