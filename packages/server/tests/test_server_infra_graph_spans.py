"""The run's graph spans, recorded with an in-memory span exporter: a span per node execution under the
run's span, an LLM span under its node with LiteLLM's call id, tokens and cost, and the traceparent the
graphs' LLM client sends to LiteLLM is that LLM span's."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.graph import END, START, StateGraph
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cogni_graphs.llm.tracing import trace_headers
from cogni_server.runs.tracing import GraphSpans

SENT: list[dict[str, str]] = []


class RecordingModel(BaseChatModel):
    """Answers at once, as the graphs' client does: usage under response_metadata["litellm"], and the
    tracing headers it would send to LiteLLM recorded."""

    @property
    def _llm_type(self) -> str:
        return "recording"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
        raise NotImplementedError

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        SENT.append(trace_headers(run_manager))
        usage = {"type": "usage", "callId": f"call-{len(SENT)}", "model": "gpt-4o-mini", "inputTokens": 7,
                 "outputTokens": 3, "costUsd": "0.00012", "node": "answer"}  # fmt: skip
        message = AIMessage(content="hi", response_metadata={"litellm": usage})
        return ChatResult(generations=[ChatGeneration(message=message)])


class State(TypedDict):
    messages: Annotated[list[BaseMessage], operator.add]


def _graph() -> Any:
    model = RecordingModel()

    async def answer(state: State) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    async def tidy(state: State) -> dict[str, Any]:
        return {"messages": []}

    builder = StateGraph(State)
    builder.add_node("answer", answer)
    builder.add_node("tidy", tidy)
    builder.add_edge(START, "answer")
    builder.add_edge("answer", "tidy")
    builder.add_edge("tidy", END)
    return builder.compile()


async def test_node_and_llm_spans_nest_under_the_run_and_the_llm_call_sends_its_own_traceparent() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    SENT.clear()
    with tracer.start_as_current_span("run.execute") as run_span:
        spans = GraphSpans(trace.set_span_in_context(run_span), tracer)
        await _graph().ainvoke({"messages": [HumanMessage("hello")]}, {"callbacks": [spans]})
    finished = {s.name: s for s in exporter.get_finished_spans()}
    assert set(finished) == {"run.execute", "graph.node answer", "graph.node tidy", "llm.call"}

    run = finished["run.execute"].get_span_context()
    for node in ("graph.node answer", "graph.node tidy"):
        assert finished[node].parent is not None and finished[node].parent.span_id == run.span_id
    llm = finished["llm.call"]
    assert llm.parent is not None and llm.parent.span_id == finished["graph.node answer"].get_span_context().span_id
    assert llm.context is not None and llm.context.trace_id == run.trace_id
    assert dict(llm.attributes or {}) == {
        "gen_ai.system": "litellm",
        "gen_ai.operation.name": "chat",
        "langgraph.node": "answer",
        "litellm.call_id": "call-1",
        "gen_ai.response.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 7,
        "gen_ai.usage.output_tokens": 3,
        "cogni.llm.cost_usd": 0.00012,
    }
    [headers] = SENT
    assert headers["traceparent"].startswith(f"00-{run.trace_id:032x}-{llm.context.span_id:016x}-")  # sampled flags
