"""RunContext: the trusted identity of one run attempt, minted by the app, never by the client."""

from typing import Annotated

from pydantic import Field, NonNegativeInt

from cogni_ai_core.wire import WireModel


class RunContext(WireModel):
    """`runId` is ours (billing and tracing), distinct from the LangGraph server's `run_id`."""

    run_id: Annotated[str, Field(min_length=1)]
    attempt: NonNegativeInt = 0
    ingress_request_id: str | None = None
    trace_id: str | None = None
