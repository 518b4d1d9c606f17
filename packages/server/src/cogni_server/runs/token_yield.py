"""Let a streaming chat model give the loop up while its tokens are buffered.

A model client reading a fast answer finds many tokens already received (one socket read holds hundreds
of server-sent-event lines) and works through them without suspending: LangGraph's `messages` handler
queues each token, but the executor that publishes them, and the SSE writer behind it, run only when
the graph's task pauses. Measured: the model's first line reached the node 14 ms after the request and
its last 30 ms after, yet the client saw the first token at 50 ms. This callback, inline on every
token, suspends the model's task for a few loop turns at its first token and then once every
`YIELD_SECONDS`, so what is queued is published and written while the rest is still being read.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.callbacks import AsyncCallbackHandler

from cogni_server.runs.inputs import with_callback

YIELD_SECONDS = 0.002
# The first token goes through several hand-offs before it is written (LangGraph's stream queue, the
# executor's publish, the broker's subscriber, the SSE writer): one loop turn each. LangGraph's handler
# may run after ours on a token (it joins the callbacks later), so the first token is queued only by
# the time the second arrives: both get the turns.
FIRST_TOKEN_TURNS = 4
EAGER_TOKENS = 2


class TokenYield(AsyncCallbackHandler):
    """Inline per-token hook: a few loop turns at the first tokens, then one every YIELD_SECONDS."""

    run_inline = True

    def __init__(self) -> None:
        self._tokens = 0
        self._next = 0.0

    async def on_llm_new_token(self, token: Any, **kwargs: Any) -> None:
        self._tokens += 1
        now = asyncio.get_running_loop().time()
        if self._tokens <= EAGER_TOKENS:
            for _ in range(FIRST_TOKEN_TURNS):
                await asyncio.sleep(0)
        elif now < self._next:
            return
        else:
            await asyncio.sleep(0)
        self._next = now + YIELD_SECONDS


def with_token_yield(config: dict[str, Any]) -> dict[str, Any]:
    """The run's config with a fresh TokenYield among its callbacks."""
    return with_callback(config, TokenYield())
