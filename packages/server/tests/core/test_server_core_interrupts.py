"""Human-in-the-loop: interrupt(), Command resume/update/goto, interrupt_before/after, time travel."""

from __future__ import annotations

from langgraph_sdk.client import LangGraphClient


async def test_interrupt_then_resume(client: LangGraphClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    parts = [
        p
        async for p in client.runs.stream(
            tid, "approval", input={"request": "deploy"}, stream_mode=["updates", "values"]
        )
    ]
    interrupt_updates = [p.data["__interrupt__"] for p in parts if p.event == "updates" and "__interrupt__" in p.data]
    assert interrupt_updates[0][0]["value"] == {"question": "approve deploy?"}
    assert interrupt_updates[0][0]["id"]
    assert "__interrupt__" in parts[-1].data  # the last values event carries the pending interrupt
    thread = await client.threads.get(tid)
    assert thread["status"] == "interrupted"
    [(_task_id, interrupts)] = thread["interrupts"].items()
    assert interrupts[0]["value"] == {"question": "approve deploy?"}
    state = await client.threads.get_state(tid)
    assert state["next"] == ["ask"]
    assert state["tasks"][0]["interrupts"][0]["value"] == {"question": "approve deploy?"}
    assert state["interrupts"][0]["value"] == {"question": "approve deploy?"}
    runs = await client.runs.list(tid)
    assert runs[0]["status"] == "interrupted"

    out = await client.runs.wait(tid, "approval", command={"resume": "yes"})
    assert out["decision"] == "yes"
    assert out["log"] == ["prepared", "asked", "finished:yes"]
    thread = await client.threads.get(tid)
    assert thread["status"] == "idle" and thread["interrupts"] == {}


async def test_wait_returns_interrupt(client: LangGraphClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    out = await client.runs.wait(tid, "approval", input={"request": "x"})
    assert out["__interrupt__"][0]["value"] == {"question": "approve x?"}


async def test_command_update_and_goto(client: LangGraphClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    await client.runs.wait(tid, "approval", input={"request": "a"})
    out = await client.runs.wait(tid, "approval", command={"update": {"decision": "forced"}, "goto": "finish"})
    assert "finished:forced" in out["log"]


async def test_interrupt_before_and_after(client: LangGraphClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    out = await client.runs.wait(
        tid, "echo", input={"messages": [{"role": "user", "content": "x"}]}, interrupt_before=["respond"]
    )
    assert len(out["messages"]) == 1
    thread = await client.threads.get(tid)
    assert thread["status"] == "interrupted"
    assert (await client.threads.get_state(tid))["next"] == ["respond"]
    out = await client.runs.wait(tid, "echo", input=None)
    assert out["messages"][-1]["content"] == "echo: x"
    tid2 = (await client.threads.create())["thread_id"]
    await client.runs.wait(tid2, "approval", input={"request": "b"}, interrupt_after="*")
    assert (await client.threads.get_state(tid2))["next"] == ["ask"]


async def test_rerun_from_checkpoint_id(client: LangGraphClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    await client.runs.wait(tid, "echo", input={"messages": [{"role": "user", "content": "one"}]})
    history = await client.threads.get_history(tid)
    first_input = [s for s in history if s["metadata"]["source"] == "input"][-1]
    await client.runs.wait(tid, "echo", input={"messages": [{"role": "user", "content": "two"}]})
    out = await client.runs.wait(
        tid,
        "echo",
        input={"messages": [{"role": "user", "content": "three"}]},
        checkpoint_id=first_input["checkpoint"]["checkpoint_id"],
    )
    contents = [m["content"] for m in out["messages"]]
    assert "two" not in contents and contents[-1] == "echo: three"


async def test_context_and_config_reach_the_graph(client: LangGraphClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    run = await client.runs.create(
        tid,
        "echo",
        input={"messages": [{"role": "user", "content": "c"}]},
        config={"configurable": {"user_setting": 1}, "tags": ["t1"]},
        durability="sync",
    )
    await client.runs.join(tid, run["run_id"])
    state = await client.threads.get_state(tid)
    assert state["metadata"]["run_id"] == run["run_id"]
    assert state["metadata"]["graph_id"] == "echo"
    got = await client.runs.get(tid, run["run_id"])
    assert got["kwargs"]["config"]["configurable"]["user_setting"] == 1
    assert got["kwargs"]["durability"] == "sync"


async def test_context_config_and_assistant_defaults_reach_nodes(client: LangGraphClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    out = await client.runs.wait(
        tid, "probe", input={}, context={"user": "ada"}, config={"configurable": {"user_setting": 7}}
    )
    assert out == {"seen_user": "ada", "seen_setting": 7, "seen_thread": tid}
    assistant = await client.assistants.create(
        "probe", context={"user": "grace"}, config={"configurable": {"user_setting": "from-assistant"}}
    )
    out = await client.runs.wait(tid, assistant["assistant_id"], input={})
    assert out["seen_user"] == "grace" and out["seen_setting"] == "from-assistant"
    out = await client.runs.wait(tid, assistant["assistant_id"], input={}, context={"user": "override"})
    assert out["seen_user"] == "override"
