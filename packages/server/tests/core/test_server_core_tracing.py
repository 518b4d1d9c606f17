"""Traces on the Agent Server alone (exported over OTLP to a receiver in the test): a run continues the
trace of the request that created it, and a run retried after a SIGKILL continues the same trace, its
new attempt linked to the attempt that died (whose exported node spans name that attempt as parent)."""

from __future__ import annotations

import asyncio

import pytest
from langgraph_sdk import get_client

from testsupport import free_port, fresh_database
from testsupport.otlp import ReceivedSpan, otlp_receiver

from .conftest import KEY_A, start_server
from .test_server_core_durability import FAST_LEASES, _wait_steps

CLIENT_TRACE = "5b8efff798038103d269b633813fc60c"
TRACEPARENT = f"00-{CLIENT_TRACE}-eee19b7ec3c1b174-01"


def _in_trace(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
    return [s for s in spans if s.trace_id == CLIENT_TRACE]


@pytest.mark.filterwarnings("ignore:Request failed, attempting reconnect", "ignore:Reconnecting without")
async def test_a_run_retried_after_sigkill_continues_the_trace_linked_to_the_attempt_that_died() -> None:
    with otlp_receiver() as otlp, fresh_database("cogni_server_core_trace") as db:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**FAST_LEASES, **otlp.env("cogni-server")}
        proc = start_server(db, port, name="traced-1", **env)
        client = get_client(url=url, api_key=KEY_A, headers={"traceparent": TRACEPARENT})
        try:
            tid = (await client.threads.create())["thread_id"]
            run = await client.runs.create(tid, "slow", input={"delay": 0.3, "steps": 6}, durability="sync")
            await _wait_steps(client, tid, 3)
            await asyncio.sleep(0.3)  # the finished steps' spans leave in the next batch (100 ms)
            proc.kill()
            proc.stop()
            first = _in_trace(otlp.snapshot())
            proc = start_server(db, port, name="traced-2", **env)
            await asyncio.wait_for(client.runs.join(tid, run["run_id"]), 60)
            spans = _in_trace(
                await asyncio.to_thread(
                    otlp.wait_for, lambda all_: any(s.name == "run.execute" for s in _in_trace(all_)), 20
                )
            )
        finally:
            await client.aclose()
            proc.stop()

    create = next(s for s in spans if s.attributes.get("http.route") == "/threads/{thread_id}/runs")
    assert create.parent_span_id == TRACEPARENT.split("-")[2]  # the client's trace, continued

    # the first attempt died before its execution span ended (never exported), its finished steps did
    assert not [s for s in first if s.name == "run.execute"]
    died_nodes = [s for s in first if s.name.startswith("graph.node")]
    assert died_nodes, "the steps the first attempt finished were exported before the kill"
    died_attempt = {s.parent_span_id for s in died_nodes}
    assert len(died_attempt) == 1

    [retry] = [s for s in spans if s.name == "run.execute"]
    assert retry.attributes["cogni.run.attempt"] == 2 and retry.attributes["cogni.run_id"] == run["run_id"]
    assert retry.parent_span_id == create.span_id  # both attempts continue the creating request's trace
    [(link_trace, link_span, link_attributes)] = retry.links
    assert (link_trace, link_span) == (CLIENT_TRACE, died_attempt.pop())
    assert link_attributes == {"cogni.link": "previous_attempt", "cogni.run.attempt": 1}
    resumed = [s for s in spans if s.name.startswith("graph.node") and s.parent_span_id == retry.span_id]
    assert resumed, "the retried attempt's steps are its children"
