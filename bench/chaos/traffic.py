"""The chats of a batch, sent through the app's chat API as a user's client would.

Each chat has its own conversation (`stateKey`), so its server thread is known
(`derive_thread_id(account, stateKey)`) and the checks can find its runs and checkpoints. A chat is
*acknowledged* when the app answered 200 with an `X-Run-Id`: from then on the run is the system's
to finish and bill, whatever happens to the client or to any process.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field

import httpx

# Each LLM call streams for about a second, so faults land mid-call and between calls.
PROMPTS = (
    ("langgraph:chat", "tell me a long story [mock:tokens=40] [mock:delay_ms=30]"),
    ("langgraph:poet", "call core__get_current_time then write a poem [mock:delay_ms=60]"),
)


@dataclass
class Chat:
    """One chat request and what its client saw."""

    index: int
    state_key: str
    graph_id: str
    message: str
    disconnect_after: int | None = None  # hang up after this many events (None: read to the end)
    status: int | None = None
    run_id: str | None = None
    events: list[str] = field(default_factory=list)
    client_error: str | None = None
    started: float = 0.0
    first_event_at: float | None = None

    @property
    def acknowledged(self) -> bool:
        return self.status == 200 and self.run_id is not None

    @property
    def saw_done(self) -> bool:
        return "done" in self.events

    @property
    def saw_error(self) -> bool:
        return "error" in self.events


def plan_chats(batch: str, runs: int, rng: random.Random, *, disconnects: bool) -> list[Chat]:
    chats = []
    for index in range(runs):
        graph_id, message = PROMPTS[index % len(PROMPTS)]
        chat = Chat(index, f"chaos-{batch}-{index}", graph_id, message)
        if disconnects:
            chat.disconnect_after = rng.randint(0, 12)  # 0: right after the headers
        chats.append(chat)
    return chats


async def send_chat(http: httpx.AsyncClient, api_key: str, chat: Chat, limit_seconds: float = 120.0) -> Chat:
    """POST /v1/chat and read the SSE stream (or hang up early); never raises."""
    chat.started = time.monotonic()
    body = {"message": chat.message, "graphId": chat.graph_id, "stateKey": chat.state_key}
    try:
        async with (
            asyncio.timeout(limit_seconds),
            http.stream("POST", "/v1/chat", json=body, headers={"Authorization": f"Bearer {api_key}"}) as response,
        ):
            chat.status = response.status_code
            chat.run_id = response.headers.get("x-run-id")
            if response.status_code != 200:
                chat.client_error = (await response.aread()).decode(errors="replace")[:300]
                return chat
            if chat.disconnect_after == 0:
                return chat
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                chat.events.append(str(json.loads(line[5:]).get("type")))
                chat.first_event_at = chat.first_event_at or time.monotonic()
                if chat.disconnect_after is not None and len(chat.events) >= chat.disconnect_after:
                    return chat  # hang up: leaving the context manager closes the connection
    except Exception as exc:  # a cut stream, a dead app: recorded, judged by the checks
        chat.client_error = f"{type(exc).__name__}: {exc}"[:300]
    return chat


async def run_chats(app_url: str, api_key: str, chats: list[Chat], stagger: float = 0.15) -> list[Chat]:
    """Send every chat, started `stagger` seconds apart, and wait for all of them."""
    async with httpx.AsyncClient(base_url=app_url, timeout=httpx.Timeout(30.0, read=60.0)) as http:

        async def one(chat: Chat, delay: float) -> Chat:
            await asyncio.sleep(delay)
            return await send_chat(http, api_key, chat)

        return list(await asyncio.gather(*(one(c, i * stagger) for i, c in enumerate(chats))))
