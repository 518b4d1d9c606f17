"""The main job: the whole topology on embedded defaults, and two chats through it.

1. an embedded Postgres for the app's ledger and the LiteLLM spend-log sink (the server starts its own);
2. the mock LLM upstream, a real LiteLLM proxy with the sink loaded;
3. the Agent Server with no LANGGRAPH_DATABASE_URL (so: embedded Postgres), service-JWT auth;
4. a chat streamed through the official `langgraph-sdk` client straight from the server;
5. the app (`cogni-app serve`): an account with credits, an API key, a chat over `/v1/chat`, and
   the charge receipt of that run next to LiteLLM's own spend-log row.

Everything is stopped at the end (Ctrl-C too). Ports are the defaults when free, else random.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from decimal import Decimal
from pathlib import Path

import httpx
import jwt
import psycopg
from langgraph_sdk import get_client

from cogni_ai_core import GraphRunConfig, derive_thread_id, price_usage
from cogni_litellm_sink.proxy import LiteLLMProxy
from cogni_server.embedded_pg import EmbeddedPostgres
from testsupport import ManagedProcess
from testsupport.llm_stack import wait_for_spend_row

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".data" / "demo"
LANGGRAPH_JSON = ROOT / "packages" / "graphs" / "langgraph.json"
JWT_AUDIENCE = "cogni-agent-server"
DEMO_ACCOUNT = "demo-account"


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def port_or_free(preferred: int) -> int:
    """The blueprint's default port if nobody listens there, else any free loopback port."""
    with socket.socket() as sock:
        if sock.connect_ex(("127.0.0.1", preferred)) != 0:
            return preferred
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def embedded_postgres() -> Iterator[str]:
    pg = EmbeddedPostgres()
    url = pg.start(DATA / "pg")
    try:
        yield url
    finally:
        pg.stop()


def ensure_database(admin_url: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = admin_url.rpartition("/")
    query = admin_url.partition("?")[2]
    return f"{base}/{name}" + (f"?{query}" if query else "")


def service_token(secret: str, tenant: str) -> str:
    now = int(time.time())
    claims = {"sub": tenant, "aud": JWT_AUDIENCE, "iat": now, "exp": now + 300}
    return jwt.encode(claims, secret, algorithm="HS256")


async def chat_through_official_client(server_url: str, token: str, model: str) -> None:
    """What a LangGraph user does: the official client, unchanged, against our server."""
    client = get_client(url=server_url, headers={"Authorization": f"Bearer {token}"})
    thread_id = derive_thread_id(DEMO_ACCOUNT, "demo-conversation")
    await client.threads.create(thread_id=thread_id, if_exists="do_nothing", metadata={"stateKey": "demo"})
    config = GraphRunConfig(
        model=model, run_id=f"demo-{secrets.token_hex(4)}", billing_account_id=DEMO_ACCOUNT, virtual_key_id="demo-vk"
    )
    print(f"thread {thread_id}\nuser: Hello from the official client\nassistant: ", end="", flush=True)
    async for part in client.runs.stream(
        thread_id,
        "chat",
        input={"messages": [{"role": "user", "content": "Hello from the official client"}]},
        config={"configurable": config.to_configurable()},
        stream_mode=["messages-tuple", "custom"],
    ):
        if part.event == "messages":
            chunk, _meta = part.data
            print(chunk.get("content", ""), end="", flush=True)
        elif part.event == "custom" and isinstance(part.data, dict) and part.data.get("type") == "usage":
            print(f"\n[usage event] LiteLLM call {part.data['callId']} cost ${part.data.get('costUsd')}", flush=True)
    state = await client.threads.get_state(thread_id)
    count = len(state["values"]["messages"])
    print(f"thread now holds {count} messages (kept in Postgres: it grows each time the demo runs)")


def chat_through_app(app_url: str, admin_token: str, sink_url: str) -> None:
    admin = {"Authorization": f"Bearer {admin_token}"}
    with httpx.Client(base_url=app_url, timeout=60) as http:
        account = http.post("/v1/admin/accounts", json={"name": "Demo Co", "initialCredits": 1_000_000}, headers=admin)
        account.raise_for_status()
        account_id = account.json()["id"]
        key = http.post(f"/v1/admin/accounts/{account_id}/api-keys", json={"label": "demo"}, headers=admin)
        key.raise_for_status()
        api_key = key.json()["apiKey"]
        print(f"account {account_id} with 1,000,000 credits; API key issued (stored hashed)")
        print(
            "models:",
            [m["id"] for m in http.get("/v1/models", headers={"Authorization": f"Bearer {api_key}"}).json()["models"]],
        )

        headers = {"Authorization": f"Bearer {api_key}", "X-Request-Id": f"demo-req-{secrets.token_hex(4)}"}
        body = {"message": "Write me a line about the sea"}
        run_id = None
        print("POST /v1/chat ->")
        with http.stream("POST", "/v1/chat", json=body, headers=headers) as response:
            response.raise_for_status()
            run_id = response.headers["X-Run-Id"]
            print(f"  X-State-Key: {response.headers['X-State-Key']}  X-Run-Id: {run_id}")
            for line in response.iter_lines():
                if line.startswith("data:"):
                    print("  ", line[5:].strip())
        receipts = []
        for _ in range(50):  # the stream's billing subscriber commits right after `done`
            receipts = http.get(f"/v1/admin/runs/{run_id}/receipts", headers=admin).json()["receipts"]
            if receipts:
                break
            time.sleep(0.1)
        say("The charge receipt of that run, and LiteLLM's own spend-log row for the same call")
        for receipt in receipts:
            print(
                json.dumps(
                    {
                        k: receipt.get(k)
                        for k in (
                            "litellmCallId",
                            "chargedCredits",
                            "responseCostUsd",
                            "provenance",
                            "sourceReference",
                        )
                    },
                    indent=2,
                    default=str,
                )
            )
            row = wait_for_spend_row(sink_url, receipt["litellmCallId"])
            print(
                f"  spend log: call {row['call_id']} spend ${row['spend']} end_user {row['end_user']} "
                f"metadata.run_id {row['spend_logs_metadata'].get('run_id')}"
            )
            expected = price_usage(Decimal(str(row["spend"])), markup=Decimal("2.0"), is_free=False).credits
            verdict = "matches" if expected == receipt["chargedCredits"] else "DOES NOT MATCH"
            print(f"  ceil(spend x markup 2.0 x 10^7) = {expected} credits: {verdict} the receipt")
        balance = http.get(f"/v1/admin/accounts/{account_id}/balance", headers=admin).json()["balanceCredits"]
        print(f"balance after the chat: {balance} credits")
        if not receipts:
            raise SystemExit("no charge receipt was written: billing is broken")


def main() -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    jwt_secret = secrets.token_hex(32)
    admin_token = secrets.token_hex(24)
    ports = {name: port_or_free(p) for name, p in (("mock", 4010), ("litellm", 4000), ("server", 8123), ("app", 8080))}
    with ExitStack() as stack:
        say("Embedded Postgres for the app ledger and the LiteLLM spend-log sink")
        admin_url = stack.enter_context(embedded_postgres())
        app_db = ensure_database(admin_url, "cogni_app")
        sink_db = ensure_database(admin_url, "cogni_spend")

        say(f"Mock LLM upstream on :{ports['mock']}")
        mock = ManagedProcess.python_module("cogni_mock_llm", "--port", str(ports["mock"]), name="mock-llm")
        stack.callback(mock.stop)
        mock.wait_http(f"http://127.0.0.1:{ports['mock']}/health")

        say(f"LiteLLM proxy on :{ports['litellm']} (first run installs it into ~/.cache/cogni, about a minute)")
        proxy = LiteLLMProxy(
            ports["litellm"], f"http://127.0.0.1:{ports['mock']}/v1", sink_db, workdir=DATA / "litellm"
        )
        stack.callback(proxy.stop)
        proxy.start(timeout=300)
        litellm_env = {"LITELLM_BASE_URL": proxy.base_url, "LITELLM_API_KEY": proxy.master_key}

        say(f"Agent Server on :{ports['server']} with no LANGGRAPH_DATABASE_URL (embedded Postgres)")
        server_url = f"http://127.0.0.1:{ports['server']}"
        server_env = {
            **litellm_env,
            "COGNI_AUTH_MODE": "jwt",
            "COGNI_JWT_SECRET": jwt_secret,
            "COGNI_JWT_AUDIENCE": JWT_AUDIENCE,
            "COGNI_DATA_DIR": str(DATA / "server"),
            "LANGGRAPH_DATABASE_URL": "",
            "REDIS_URL": "",
        }
        cli = shutil.which("cogni-server") or "cogni-server"
        server = ManagedProcess(
            [cli, "serve", "--config", str(LANGGRAPH_JSON), "--port", str(ports["server"])],
            env=server_env,
            name="server",
        )
        stack.callback(server.stop)
        server.wait_http(f"{server_url}/ok", timeout=120)

        say("A chat streamed through the official langgraph-sdk client")
        asyncio.run(chat_through_official_client(server_url, service_token(jwt_secret, DEMO_ACCOUNT), "gpt-4o-mini"))

        say(f"The app (chat API) on :{ports['app']}, running graphs on the Agent Server")
        app_url = f"http://127.0.0.1:{ports['app']}"
        app_env = {
            **litellm_env,
            "DATABASE_URL": app_db,
            "LANGGRAPH_SERVER_URL": server_url,
            "COGNI_JWT_SECRET": jwt_secret,
            "COGNI_JWT_AUDIENCE": JWT_AUDIENCE,
            "COGNI_ADMIN_TOKEN": admin_token,
            "COGNI_EXECUTOR": "server",
            "COGNI_SPEND_SINK_DATABASE_URL": sink_db,
            "USER_PRICE_MARKUP_FACTOR": "2.0",
        }
        app_cli = shutil.which("cogni-app") or "cogni-app"
        app = ManagedProcess([app_cli, "serve", "--port", str(ports["app"])], env=app_env, name="app")
        stack.callback(app.stop)
        app.wait_http(f"{app_url}/healthz", timeout=120)  # migrates at start-up
        chat_through_app(app_url, admin_token, sink_db)
        say("Done: stopping every process")


if __name__ == "__main__":
    os.chdir(ROOT)
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
