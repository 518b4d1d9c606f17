"""The three measurements, each through the official `langgraph-sdk` client, as a user would call.

- sequential: create a thread, stream a `trivial` run with `stream_mode="values"`, one after another.
- concurrent: the same trivial run from N clients at once; runs per second over the whole batch.
- tokens: an `llm` run streamed with `messages-tuple` while the mock model writes a long answer.

Every run is checked (the last `values` event must carry `count == 1`, the token count must match),
so a server that answers fast but wrong fails the bench instead of winning it.
"""

from __future__ import annotations

import asyncio
import statistics
import time
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


async def sequential(url: str, runs: int, warmup: int) -> dict[str, Any]:
    """`runs` trivial runs one after another, after `warmup` unmeasured ones."""
    outcome = Outcome()
    async with client_for(url) as client:
        for _ in range(warmup):
            await trivial_run(client)
        for _ in range(runs):
            try:
                outcome.samples_ms.append(await trivial_run(client))
            except (RunFailed, TimeoutError, OSError) as exc:
                outcome.fail(exc)
    return outcome.as_dict()


async def concurrent(url: str, clients: int, runs_per_client: int) -> dict[str, Any]:
    """`clients` independent SDK clients, each doing `runs_per_client` trivial runs back to back."""
    outcome = Outcome()
    sdk_clients = [client_for(url) for _ in range(clients)]

    async def worker(client: LangGraphClient) -> None:
        for _ in range(runs_per_client):
            try:
                outcome.samples_ms.append(await trivial_run(client))
            except (RunFailed, TimeoutError, OSError) as exc:
                outcome.fail(exc)

    try:
        await asyncio.gather(*(trivial_run(c) for c in sdk_clients))  # warm every connection once
        started = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in sdk_clients))
        wall = time.perf_counter() - started
    finally:
        await asyncio.gather(*(c.aclose() for c in sdk_clients))
    result = outcome.as_dict()
    result.update(
        clients=clients,
        wall_s=round(wall, 3),
        runs_per_s=round(len(outcome.samples_ms) / wall, 2) if wall > 0 else None,
    )
    return result


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
    seen = len("".join(parts).split())
    if seen != tokens:
        raise RunFailed(f"streamed {seen} tokens in {len(parts)} chunks, expected {tokens}")
    streaming = (last or ended) - (first or ended)
    return {
        "total_ms": (ended - started) * 1000,
        "ttft_ms": ((first or ended) - started) * 1000,
        "chunks": float(len(parts)),
        "tokens_per_s": tokens / (ended - started),
        "stream_tokens_per_s": (tokens - 1) / streaming if streaming > 0 else 0.0,
    }


async def token_rate(url: str, llm_base_url: str, tokens: int, runs: int) -> dict[str, Any]:
    """Median rates of `runs` long answers (after one warm-up answer).

    `tokens_per_s` counts the whole run (request to last token, so queueing and time to first token
    weigh in); `stream_tokens_per_s` counts only from the first token to the last.
    """
    rates: list[float] = []
    stream_rates: list[float] = []
    ttfts: list[float] = []
    chunks = 0.0
    outcome = Outcome()
    async with client_for(url) as client:
        await llm_run(client, llm_base_url, min(tokens, 20))
        for _ in range(runs):
            try:
                result = await llm_run(client, llm_base_url, tokens)
            except (RunFailed, TimeoutError, OSError) as exc:
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
