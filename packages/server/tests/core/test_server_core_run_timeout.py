"""COGNI_RUN_TIMEOUT_SECONDS: a run that takes longer ends with status ``timeout`` and an ``error`` event;
shorter runs are untouched."""

from __future__ import annotations

from langgraph_sdk import get_client

from testsupport import free_port, fresh_database

from .conftest import KEY_A, start_server


async def test_a_run_over_the_time_limit_ends_with_status_timeout() -> None:
    with fresh_database("cogni_server_core_timeout") as db:
        port = free_port()
        proc = start_server(db, port, name="timeout", COGNI_RUN_TIMEOUT_SECONDS="1")
        client = get_client(url=f"http://127.0.0.1:{port}", api_key=KEY_A)
        try:
            thread = await client.threads.create()
            tid = thread["thread_id"]
            parts = [
                p
                async for p in client.runs.stream(
                    tid, "slow", input={"delay": 0.2, "steps": 100}, stream_mode="updates"
                )
            ]
            run_id = parts[0].data["run_id"]
            assert parts[-1].event == "error"
            assert parts[-1].data["error"] == "TimeoutError"
            assert "1s" in parts[-1].data["message"]
            ticks = [p for p in parts if p.event == "updates"]
            assert 2 <= len(ticks) < 10  # it ran for about a second, then stopped
            assert (await client.runs.get(tid, run_id))["status"] == "timeout"
            assert (await client.threads.get(tid))["status"] == "error"
            joined = await client.runs.join(tid, run_id)
            assert joined["__error__"]["error"] == "TimeoutError"

            # the thread is usable again, and a quick run is not affected by the limit
            out = await client.runs.wait(tid, "echo", input={"messages": [{"role": "user", "content": "hi"}]})
            assert out["messages"][-1]["content"] == "echo: hi"
            assert (await client.threads.get(tid))["status"] == "idle"
        finally:
            await client.aclose()
            proc.stop()
