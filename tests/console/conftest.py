"""The whole stack for the console's browser tests: mock LLM + LiteLLM proxy + sink, an Agent Server that
serves the real graphs plus an interrupting and a slow fixture graph and allows the app's origin (CORS)
and webhooks to loopback, and `cogni-app serve` with the console (able to purge a tenant on the server);
plus Debian's Chromium driven by Playwright."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, sync_playwright

from testsupport import ManagedProcess, free_port, fresh_database
from testsupport.llm_stack import LlmStack, running_llm_stack

ROOT = Path(__file__).resolve().parents[2]
ADMIN = "console-admin-" + "k" * 32
SECRET = "console-jwt-" + "s" * 40
SERVER_OPERATOR = "console-server-operator-" + "o" * 32  # the app's server purge (data deletions)
GRAPHS = ROOT / "packages" / "graphs" / "src" / "cogni_graphs"
FIXTURES = ROOT / "packages" / "server" / "tests" / "fixtures" / "project" / "server_fixture_graphs.py"


@dataclass
class ConsoleStack:
    llm: LlmStack
    app_url: str
    server_url: str
    app_db: str
    http: httpx.Client

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, path, headers={"Authorization": f"Bearer {ADMIN}"}, **kwargs)


def write_project(directory: Path) -> Path:
    """The real graphs and two fixture graphs (an interrupt, a slow run) in one langgraph.json."""
    project = directory / "langgraph.json"
    graphs = {
        "chat": f"{GRAPHS / 'chat' / 'graph.py'}:graph",
        "poet": f"{GRAPHS / 'poet' / 'graph.py'}:graph",
        "approval": f"{FIXTURES}:approval",
        "slow": f"{FIXTURES}:slow",
    }
    project.write_text(json.dumps({"graphs": graphs}))
    return project


@pytest.fixture(scope="module")
def console_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleStack]:
    project = write_project(tmp_path_factory.mktemp("console-project"))
    with (
        running_llm_stack() as llm,
        fresh_database("cogni_console_srv") as server_db,
        fresh_database("cogni_console_app") as app_db,
    ):
        server_port, app_port = free_port(), free_port()
        app_url, server_url = f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{server_port}"
        server = ManagedProcess(
            [sys.executable, "-m", "cogni_server", "serve", "--config", str(project), "--port", str(server_port)],
            env={**llm.env(), "LANGGRAPH_DATABASE_URL": server_db, "COGNI_AUTH_MODE": "jwt",
                 "COGNI_JWT_SECRET": SECRET, "COGNI_JWT_AUDIENCE": "cogni-agent-server",
                 "COGNI_CORS_ALLOW_ORIGINS": app_url, "REDIS_URL": "", "COGNI_POLL_SECONDS": "0.2",
                 "COGNI_OPERATOR_TOKEN": SERVER_OPERATOR, "COGNI_WEBHOOK_ALLOWED_DOMAINS": "127.0.0.1",
                 "COGNI_WEBHOOK_POLL_SECONDS": "0.2"},
            name="console-agent-server",
        )  # fmt: skip
        app = ManagedProcess(  # starts alongside the server: it reaches the server only per run
            [sys.executable, "-m", "cogni_app", "serve", "--port", str(app_port)],
            env={**llm.env(), "DATABASE_URL": app_db, "LANGGRAPH_SERVER_URL": server_url,
                 "COGNI_EXECUTOR": "server", "COGNI_JWT_SECRET": SECRET, "COGNI_ADMIN_TOKEN": ADMIN,
                 "COGNI_RECONCILE_DELAY_SECONDS": "0.2", "COGNI_RECONCILE_INTERVAL_SECONDS": "0",
                 "COGNI_SERVER_OPERATOR_TOKEN": SERVER_OPERATOR, "COGNI_DELETION_RETRY_SECONDS": "0.5"},
            name="console-app",
        )  # fmt: skip
        try:
            server.wait_http(f"{server_url}/ok", timeout=60)
            app.wait_http(f"{app_url}/healthz", timeout=60)
            with httpx.Client(base_url=app_url, timeout=60.0) as http:
                yield ConsoleStack(llm=llm, app_url=app_url, server_url=server_url, app_db=app_db, http=http)
        finally:
            app.stop()
            server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is missing: scripts/ensure-env.sh installs it (apt-get install chromium)"
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def shots() -> Path:
    """Where screenshots go: COGNI_CONSOLE_SCREENSHOTS (docs/console to refresh the docs), else a gitignored dir."""
    target = Path(os.environ.get("COGNI_CONSOLE_SCREENSHOTS") or ROOT / ".artifacts" / "console")
    target.mkdir(parents=True, exist_ok=True)
    return target
