"""The measurements, each through the official `langgraph-sdk` client, as a user would call.

- sequential: create a thread, stream a `trivial` run with `stream_mode="values"`, one after another.
- concurrent: the same trivial run from N clients at once; runs per second over the whole batch.
- tokens: an `llm` run streamed with `messages-tuple` while the mock model writes a long answer.
- thread-stream: the same answer through the thread-centric streaming API (`client.threads.stream`,
  `POST /threads/{id}/stream/events` + `/commands`), where the target serves it ("n/a" otherwise).

The loops (`sequential_with`, `concurrent_with`, `token_rate_with`) take the single run as a
function, so the in-process floor (bench/floor.py) is measured by exactly the same arithmetic.

Every run is checked (the last `values` event must carry `count == 1`, the token count must match),
so a server that answers fast but wrong fails the bench instead of winning it.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.schema import Config

from bench.stats import summary

RUN_TIMEOUT_S = 120.0
HUMAN_TYPES = ("human", "HumanMessage", "HumanMessageChunk")


class RunFailed(RuntimeError):
    """A run that errored, timed out, or produced the wrong output."""


@dataclass
class Outcome:
    """Latency samples of the successful runs and the first few failure messages."""

    samples_ms: list[float] = field(default_factory=list)
    failures: int = 0
    errors: list[str] = field(default_factory=list)

    def fail(self, exc: BaseException) -> None:
        self.failures += 1
        if len(self.errors) < 5:
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def as_dict(self) -> dict[str, Any]:
        stats: dict[str, Any] = summary(self.samples_ms) if self.samples_ms else {}
        samples = [round(x, 2) for x in self.samples_ms]
        return {
            "runs": len(self.samples_ms),
            "failures": self.failures,
            "errors": self.errors,
            **stats,
            "samples_ms": samples,
        }


def client_for(url: str) -> LangGraphClient:
    """An SDK client with no API key picked up from the environment (all targets run without auth)."""
    return get_client(url=url, api_key=None, timeout=RUN_TIMEOUT_S)


async def trivial_run(client: LangGraphClient, assistant: str = "trivial") -> float:
    """Create a thread and stream one trivial run to its end; return the wall time in ms."""
    started = time.perf_counter()
    async with asyncio.timeout(RUN_TIMEOUT_S):
        thread = await client.threads.create()
        last: Any = None
        async for part in client.runs.stream(thread["thread_id"], assistant, input={"count": 0}, stream_mode="values"):
            if part.event == "error":
                raise RunFailed(f"error event: {part.data}")
            if part.event == "values":
                last = part.data
    elapsed = (time.perf_counter() - started) * 1000
    if not isinstance(last, dict) or last.get("count") != 1:
        raise RunFailed(f"last values event was {last!r}, expected {{'count': 1}}")
    return elapsed


RunOnce = Callable[[], Awaitable[float]]
EXPECTED_FAILURES: tuple[type[BaseException], ...] = (RunFailed, TimeoutError, OSError)


async def sequential_with(run_once: RunOnce, runs: int, warmup: int) -> dict[str, Any]:
    """`runs` calls of `run_once` one after another, after `warmup` unmeasured ones."""
    outcome = Outcome()
    for _ in range(warmup):
        await run_once()
    for _ in range(runs):
        try:
            outcome.samples_ms.append(await run_once())
        except EXPECTED_FAILURES as exc:
            outcome.fail(exc)
    return outcome.as_dict()


async def concurrent_with(run_onces: list[RunOnce], runs_per_client: int) -> dict[str, Any]:
    """Every `run_onces[i]` (one per client) called `runs_per_client` times back to back, all at once.

    Each client runs once unmeasured first (connections, caches); runs per second over the batch.
    """
    outcome = Outcome()

    async def worker(run_once: RunOnce) -> None:
        for _ in range(runs_per_client):
            try:
                outcome.samples_ms.append(await run_once())
            except EXPECTED_FAILURES as exc:
                outcome.fail(exc)

    await asyncio.gather(*(run_once() for run_once in run_onces))  # warm every client once
    started = time.perf_counter()
    await asyncio.gather(*(worker(run_once) for run_once in run_onces))
    wall = time.perf_counter() - started
    result = outcome.as_dict()
    result.update(
        clients=len(run_onces),
        wall_s=round(wall, 3),
        runs_per_s=round(len(outcome.samples_ms) / wall, 2) if wall > 0 else None,
    )
    return result


async def sequential(url: str, runs: int, warmup: int) -> dict[str, Any]:
    """`runs` trivial runs one after another through one SDK client, after `warmup` unmeasured ones."""
    async with client_for(url) as client:
        return await sequential_with(lambda: trivial_run(client), runs, warmup)


async def concurrent(url: str, clients: int, runs_per_client: int) -> dict[str, Any]:
    """`clients` independent SDK clients, each doing `runs_per_client` trivial runs back to back."""
    sdk_clients = [client_for(url) for _ in range(clients)]
    try:
        return await concurrent_with([_bind(trivial_run, c) for c in sdk_clients], runs_per_client)
    finally:
        await asyncio.gather(*(c.aclose() for c in sdk_clients))


def _bind(fn: Callable[[LangGraphClient], Awaitable[float]], client: LangGraphClient) -> RunOnce:
    return lambda: fn(client)


async def llm_run(client: LangGraphClient, llm_base_url: str, tokens: int) -> dict[str, float]:
    """Stream one `llm` run with `messages-tuple`; return timings and the number of tokens seen."""
    thread = await client.threads.create()
    prompt = f"[mock:tokens={tokens}] benchmark"
    config: Config = {"configurable": {"llm_base_url": llm_base_url}}
    llm_input: dict[str, Any] = {"messages": [{"role": "user", "content": prompt}]}
    parts: list[str] = []
    first: float | None = None
    last: float | None = None
    started = time.perf_counter()
    async with asyncio.timeout(RUN_TIMEOUT_S):
        async for part in client.runs.stream(
            thread["thread_id"],
            "llm",
            input=llm_input,
            config=config,
            stream_mode="messages-tuple",
        ):
            if part.event == "error":
                raise RunFailed(f"error event: {part.data}")
            if part.event == "messages":
                data: Any = part.data
                chunk: dict[str, Any] = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}
                content = chunk.get("content")
                if isinstance(content, str) and content and chunk.get("type") not in HUMAN_TYPES:
                    last = time.perf_counter()
                    first = first or last
                    parts.append(content)
    ended = time.perf_counter()
    return answer_timings(tokens, "".join(parts), len(parts), started, first, last, ended)


Answer = Callable[[int], Awaitable[dict[str, float]]]


async def token_rate_with(answer: Answer, tokens: int, runs: int) -> dict[str, Any]:
    """Median rates of `runs` long answers from `answer(tokens)` (after one short warm-up answer).

    `tokens_per_s` counts the whole run (request to last token, so queueing and time to first token
    weigh in); `stream_tokens_per_s` counts only from the first token to the last.
    """
    rates: list[float] = []
    stream_rates: list[float] = []
    ttfts: list[float] = []
    chunks = 0.0
    outcome = Outcome()
    await answer(min(tokens, 20))
    for _ in range(runs):
        try:
            result = await answer(tokens)
        except EXPECTED_FAILURES as exc:
            outcome.fail(exc)
            continue
        outcome.samples_ms.append(result["total_ms"])
        rates.append(result["tokens_per_s"])
        stream_rates.append(result["stream_tokens_per_s"])
        ttfts.append(result["ttft_ms"])
        chunks = result["chunks"]
    out = outcome.as_dict()
    if rates:
        out.update(
            tokens=tokens,
            chunks_per_answer=int(chunks),
            tokens_per_s=round(statistics.median(rates), 1),
            stream_tokens_per_s=round(statistics.median(stream_rates), 1),
            ttft_median_ms=round(statistics.median(ttfts), 3),
        )
    return out


def answer_timings(
    tokens: int, seen_text: str, chunks: int, started: float, first: float | None, last: float | None, ended: float
) -> dict[str, float]:
    """Check that exactly `tokens` tokens arrived and turn the timestamps into the answer's figures."""
    seen = len(seen_text.split())
    if seen != tokens:
        raise RunFailed(f"streamed {seen} tokens in {chunks} chunks, expected {tokens}")
    streaming = (last or ended) - (first or ended)
    return {
        "total_ms": (ended - started) * 1000,
        "ttft_ms": ((first or ended) - started) * 1000,
        "chunks": float(chunks),
        "tokens_per_s": tokens / (ended - started),
        "stream_tokens_per_s": (tokens - 1) / streaming if streaming > 0 else 0.0,
    }


async def token_rate(url: str, llm_base_url: str, tokens: int, runs: int) -> dict[str, Any]:
    """`token_rate_with` over `runs.stream(..., stream_mode="messages-tuple")` through one SDK client."""
    async with client_for(url) as client:
        return await token_rate_with(lambda n: llm_run(client, llm_base_url, n), tokens, runs)


# -- thread-centric streaming (`client.threads.stream`) -----------------------------------------


async def serves_thread_streaming(client: LangGraphClient) -> tuple[bool, str]:
    """Whether the target serves `POST /threads/{id}/stream/events`, and why not if it does not.

    Probed on a thread that exists, so a 404 means the route is missing, not the thread.
    """
    thread = await client.threads.create()
    http = client.http.client
    path = f"/threads/{thread['thread_id']}/stream/events"
    headers = {"accept": "text/event-stream", "content-type": "application/json"}
    async with asyncio.timeout(30), http.stream("POST", path, json={"channels": ["lifecycle"]}, headers=headers) as r:
        if r.status_code < 300:
            return True, f"{r.status_code}"
        return False, f"POST {path.replace(thread['thread_id'], '{id}')} answered {r.status_code}"


async def thread_stream_answer(client: LangGraphClient, llm_base_url: str, tokens: int) -> dict[str, float]:
    """One `llm` answer through `client.threads.stream`: `run.start`, then a `messages` subscription
    read until the run's terminal lifecycle event. Times count from just before `run.start`."""
    prompt = f"[mock:tokens={tokens}] benchmark"
    config: dict[str, Any] = {"configurable": {"llm_base_url": llm_base_url}}
    parts: list[str] = []
    events = 0
    first_event: float | None = None
    first: float | None = None
    last: float | None = None
    async with asyncio.timeout(RUN_TIMEOUT_S), client.threads.stream(assistant_id="llm") as thread:
        started = time.perf_counter()
        await thread.run.start(input={"messages": [{"role": "user", "content": prompt}]}, config=config)
        async for event in thread.subscribe(["messages"]):
            now = time.perf_counter()
            events += 1
            first_event = first_event or now
            data = (event.get("params") or {}).get("data") or {}
            delta = data.get("delta") if isinstance(data, dict) else None
            if data.get("event") == "content-block-delta" and isinstance(delta, dict):
                text = delta.get("text")
                if delta.get("type") == "text-delta" and isinstance(text, str) and text:
                    last = now
                    first = first or now
                    parts.append(text)
        ended = time.perf_counter()
    result = answer_timings(tokens, "".join(parts), len(parts), started, first, last, ended)
    first_event = first_event or ended
    streaming = ended - first_event
    result.update(
        events=float(events),
        ttfe_ms=(first_event - started) * 1000,
        events_per_s=events / streaming if streaming > 0 else 0.0,
    )
    return result


async def thread_stream(url: str, llm_base_url: str, tokens: int, runs: int) -> dict[str, Any]:
    """Time to first event and events/s of `runs` long answers through the thread-streaming API.

    A target that does not serve the API gets `{"served": False, "note": ...}` (reported as n/a),
    so the bench picks it up on its own once it does.
    """
    async with client_for(url) as client:
        served, why = await serves_thread_streaming(client)
        if not served:
            return {"served": False, "note": why}
        extra: dict[str, list[float]] = {"ttfe_ms": [], "events_per_s": [], "events": []}

        async def answer(n: int) -> dict[str, float]:
            result = await thread_stream_answer(client, llm_base_url, n)
            if n == tokens:
                for key, values in extra.items():
                    values.append(result[key])
            return result

        out = await token_rate_with(answer, tokens, runs)
    out["served"] = True
    if extra["events"]:
        out.update(
            events_per_answer=int(statistics.median(extra["events"])),
            ttfe_median_ms=round(statistics.median(extra["ttfe_ms"]), 3),
            events_per_s=round(statistics.median(extra["events_per_s"]), 1),
        )
    return out
