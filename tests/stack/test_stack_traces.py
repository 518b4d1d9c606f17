"""One chat is one trace: the app, the Agent Server API and a separate worker process that runs the chat,
exporting over OTLP to a receiver in the test, configured only by the standard ``OTEL_*`` variables; the
real LiteLLM proxy answers the LLM calls. What an operator following a chat sees: every span in the client's trace, in
the right parent/child order (app request > executor call > server request > queue / execution > node
> LLM call), the LLM span naming LiteLLM's call id, which is also the receipt's and the spend log's,
whose metadata names the trace. And the processes' log lines are JSON carrying the ids, no secrets.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from testsupport import ManagedProcess, free_port, fresh_database
from testsupport.llm_stack import LlmStack, running_llm_stack
from testsupport.otlp import OtlpReceiver, ReceivedSpan, otlp_receiver

pytestmark = [pytest.mark.stack, pytest.mark.proxy, pytest.mark.integration]
ADMIN = "trace-admin-" + "k" * 32
SECRET = "trace-jwt-" + "s" * 40
REDIS = "redis://127.0.0.1:6379/0"
CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"
MESSAGE = "call core__get_current_time then write a poem about lighthouses"


@dataclass
class Traced:
    llm: LlmStack
    app_db: str
    http: httpx.Client
    otlp: OtlpReceiver
    app: ManagedProcess
    server: ManagedProcess
    worker: ManagedProcess


@pytest.fixture(scope="module")
def traced() -> Iterator[Traced]:
    with (
        otlp_receiver() as otlp,
        running_llm_stack() as llm,
        fresh_database("cogni_trace_srv") as server_db,
        fresh_database("cogni_trace_app") as app_db,
    ):
        server_port, worker_port, app_port = free_port(), free_port(), free_port()
        server_env = {**llm.env(), "LANGGRAPH_DATABASE_URL": server_db, "REDIS_URL": REDIS, "COGNI_AUTH_MODE": "jwt",
                      "COGNI_JWT_SECRET": SECRET, "COGNI_JWT_AUDIENCE": "cogni-agent-server",
                      "COGNI_LOG_FORMAT": "json"}  # fmt: skip
        serve = [sys.executable, "-m", "cogni_server", "serve", "--config", "packages/graphs/langgraph.json"]
        # as deployed: the API creates runs, a separate worker process claims and executes them, so the
        # run's spans reach the chat's trace only through the carrier stored in the run's settings
        server = ManagedProcess(
            [*serve, "--port", str(server_port), "--no-workers"],
            env={**server_env, **otlp.env("cogni-server")},
            name="agent-server",
        )
        worker = ManagedProcess(
            [*serve, "--port", str(worker_port), "--workers-only"],
            env={**server_env, **otlp.env("cogni-worker")},
            name="agent-worker",
        )
        app = None
        try:
            server.wait_http(f"http://127.0.0.1:{server_port}/ok", timeout=60)
            worker.wait_http(f"http://127.0.0.1:{worker_port}/ok", timeout=60)
            app = ManagedProcess(
                [sys.executable, "-m", "cogni_app", "serve", "--port", str(app_port)],
                env={**llm.env(), **otlp.env("cogni-app"), "DATABASE_URL": app_db,
                     "LANGGRAPH_SERVER_URL": f"http://127.0.0.1:{server_port}", "COGNI_EXECUTOR": "server",
                     "COGNI_JWT_SECRET": SECRET, "COGNI_ADMIN_TOKEN": ADMIN, "COGNI_RECONCILE_DELAY_SECONDS": "0.2",
                     "COGNI_RECONCILE_INTERVAL_SECONDS": "0", "COGNI_LOG_FORMAT": "json"},
                name="cogni-app",
            )  # fmt: skip
            app.wait_http(f"http://127.0.0.1:{app_port}/healthz", timeout=60)
            with httpx.Client(base_url=f"http://127.0.0.1:{app_port}", timeout=60.0) as http:
                yield Traced(llm=llm, app_db=app_db, http=http, otlp=otlp, app=app, server=server, worker=worker)
        finally:
            if app is not None:
                app.stop()
            worker.stop()
            server.stop()


def _account(traced: Traced) -> tuple[str, str]:
    admin = {"Authorization": f"Bearer {ADMIN}"}
    account = traced.http.post("/v1/admin/accounts", json={"name": "t", "initialCredits": 50_000_000}, headers=admin)
    key = traced.http.post(f"/v1/admin/accounts/{account.json()['id']}/api-keys", json={}, headers=admin)
    return account.json()["id"], key.json()["apiKey"]


def _chat(traced: Traced, key: str) -> tuple[httpx.Response, list[dict[str, Any]]]:
    headers = {
        "Authorization": f"Bearer {key}",
        "X-Request-Id": "req-trace-1",
        "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01",
    }
    events: list[dict[str, Any]] = []
    body = {"message": MESSAGE, "graphId": "langgraph:poet"}
    with traced.http.stream("POST", "/v1/chat", json=body, headers=headers) as response:
        assert response.status_code == 200, response.read().decode()
        events = [json.loads(line[5:]) for line in response.iter_lines() if line.startswith("data:")]
    return response, events


def _receipts(app_db: str, run_id: str) -> list[dict[str, Any]]:
    with psycopg.connect(app_db, row_factory=dict_row) as conn:
        return [dict(r) for r in conn.execute("SELECT * FROM charge_receipts WHERE run_id = %s", (run_id,))]


def _one(spans: list[ReceivedSpan], predicate: Any, what: str) -> ReceivedSpan:
    found = [s for s in spans if predicate(s)]
    assert len(found) == 1, f"expected one {what}, got {[(s.service, s.name) for s in found]}"
    return found[0]


def _complete(spans: list[ReceivedSpan]) -> bool:
    names = [s.name for s in spans]
    return (
        sum(n.startswith("llm.call") for n in names) + names.count("ledger.commit") >= 4
        and "reconcile.run" in names
        and "run.execute" in names
        and any(s.service == "cogni-app" and s.attributes.get("http.route") == "/v1/chat" for s in spans)
    )


def test_one_chat_is_one_trace_from_the_app_through_the_server_to_each_llm_call(traced: Traced) -> None:
    _, key = _account(traced)
    response, events = _chat(traced, key)
    assert events[-1]["type"] == "done"
    run_id = response.headers["x-run-id"]
    assert response.headers["x-trace-id"] == CLIENT_TRACE  # the client's trace is continued, not replaced

    spans = [s for s in traced.otlp.wait_for(lambda all_: _complete([s for s in all_ if s.trace_id == CLIENT_TRACE]))
             if s.trace_id == CLIENT_TRACE]  # fmt: skip
    by_id = {s.span_id: s for s in spans}

    def parent(span: ReceivedSpan) -> ReceivedSpan:
        assert span.parent_span_id in by_id, f"{span.name}'s parent was not exported in this trace"
        return by_id[span.parent_span_id]

    chat = _one(spans, lambda s: s.service == "cogni-app" and s.attributes.get("http.route") == "/v1/chat", "chat")
    assert chat.parent_span_id == CLIENT_SPAN

    executor = _one(spans, lambda s: s.name == "executor.run_graph", "executor call")
    assert parent(executor) is chat and executor.attributes["cogni.run_id"] == run_id

    stream = _one(
        spans,
        lambda s: s.service == "cogni-server" and str(s.attributes.get("http.route", "")).endswith("/runs/stream"),
        "server stream request",
    )
    assert parent(stream) is executor
    created = [s for s in spans if s.service == "cogni-server" and s.attributes.get("http.route") == "/threads"]
    assert created and all(parent(s) is executor for s in created)  # the thread's create, same call

    queue = _one(spans, lambda s: s.name == "run.queue", "queue span")
    execute = _one(spans, lambda s: s.name == "run.execute", "execution span")
    assert parent(queue) is stream and parent(execute) is stream  # across processes: the run's carrier
    assert {queue.service, execute.service} == {"cogni-worker"}
    assert queue.end_ns <= execute.start_ns + 5_000_000  # queued, then executed
    assert execute.attributes["cogni.thread_id"] and execute.attributes["cogni.run.attempt"] == 1

    nodes = [s for s in spans if s.name.startswith("graph.node ")]
    assert {s.attributes["langgraph.node"] for s in nodes} >= {"tools"}
    assert all(parent(s) is execute for s in nodes)

    llm_calls = [s for s in spans if s.name.startswith("llm.call")]
    assert len(llm_calls) == 2  # the tool call round, then the poem
    for call in llm_calls:
        node = parent(call)
        assert node.name.startswith("graph.node ") and node.attributes["langgraph.node"] != "tools"
        assert call.attributes["gen_ai.usage.input_tokens"] > 0 and call.attributes["gen_ai.usage.output_tokens"] > 0
        assert call.attributes["cogni.llm.cost_usd"] > 0

    receipts = _receipts(traced.app_db, run_id)
    call_ids = {r["litellm_call_id"] for r in receipts}
    assert {c.attributes["litellm.call_id"] for c in llm_calls} == call_ids and len(call_ids) == 2

    commits = [s for s in spans if s.name == "ledger.commit"]
    assert {c.attributes["litellm.call_id"] for c in commits} >= call_ids  # each charge in the chat's trace
    assert all(c.service == "cogni-app" for c in commits)
    reconcile = _one(spans, lambda s: s.name == "reconcile.run", "post-run reconcile")
    assert reconcile.attributes["cogni.run_id"] == run_id

    # a receipt leads to its trace: the spend log of each call names it
    rows = [r for r in traced.llm.spend_rows() if r["call_id"] in call_ids]
    assert len(rows) == 2 and {r["spend_logs_metadata"]["trace_id"] for r in rows} == {CLIENT_TRACE}


def test_log_lines_are_json_with_the_ids_and_no_secrets(traced: Traced) -> None:
    account_id, key = _account(traced)
    response, _ = _chat(traced, key)
    run_id = response.headers["x-run-id"]
    traced.otlp.wait_for(lambda spans: any(s.name == "reconcile.run" and s.attributes.get("cogni.run_id") == run_id
                                           for s in spans))  # fmt: skip

    app_lines = [json.loads(line) for line in traced.app.output().splitlines() if line.startswith("{")]
    started = [line for line in app_lines if line.get("event") == "chat_run_started" and line.get("run_id") == run_id]
    assert len(started) == 1
    line = started[0]
    assert line["trace_id"] == CLIENT_TRACE and line["request_id"] == "req-trace-1"
    assert line["tenant"] == account_id and line["thread_id"] and line["level"] == "info"

    for process in (traced.app, traced.server, traced.worker):
        text = process.output()
        assert key not in text and SECRET not in text and "lighthouses" not in text
        lines = [raw for raw in text.splitlines() if raw.strip()]
        assert lines and all(raw.startswith("{") for raw in lines), [r for r in lines if not r.startswith("{")][:3]
        assert all(isinstance(json.loads(raw), dict) for raw in lines)
