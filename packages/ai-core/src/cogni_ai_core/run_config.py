"""GraphRunConfig: what travels in LangGraph's `config.configurable` for every run.

Keys are camelCase (`runId`, `billingAccountId`, ...) so the same dict is valid in-process and
over the server's HTTP API. Node-scoped overrides are flat keys `<nodeKey>__model` and
`<nodeKey>__toolIds`. LangGraph adds its own keys (`thread_id`, `checkpoint_ns`, ...) to the same
dict; `from_configurable` ignores those and only those it knows are LangGraph's or ours.
"""

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field, NonNegativeInt

from cogni_ai_core.identity import ExecutorType
from cogni_ai_core.wire import WireModel

NODE_MODEL_SUFFIX = "__model"
NODE_TOOL_IDS_SUFFIX = "__toolIds"
_OUR_KEYS = frozenset(
    {
        "model",
        "runId",
        "attempt",
        "billingAccountId",
        "virtualKeyId",
        "traceId",
        "requestId",
        "toolIds",
        "user",
        "executorType",
        "graphId",
    }
)


class GraphRunConfig(WireModel):
    """The identity and policy a graph run needs; set by the trusted side, never by the end user."""

    model: Annotated[str, Field(min_length=1)]
    run_id: Annotated[str, Field(min_length=1)]
    attempt: NonNegativeInt = 0
    billing_account_id: Annotated[str, Field(min_length=1)]
    virtual_key_id: Annotated[str, Field(min_length=1)]
    trace_id: str | None = None
    request_id: str | None = None
    tool_ids: list[str] | None = None
    user: str | None = None
    executor_type: ExecutorType | None = None
    graph_id: str | None = None
    node_models: dict[str, str] = Field(default_factory=dict, exclude=True)
    node_tool_ids: dict[str, list[str]] = Field(default_factory=dict, exclude=True)

    def to_configurable(self) -> dict[str, Any]:
        """Flat dict for `config["configurable"]`, node overrides as `<node>__model` keys."""
        out: dict[str, Any] = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        if self.user is None:
            out["user"] = self.billing_account_id
        for node, model in self.node_models.items():
            out[f"{node}{NODE_MODEL_SUFFIX}"] = model
        for node, tool_ids in self.node_tool_ids.items():
            out[f"{node}{NODE_TOOL_IDS_SUFFIX}"] = list(tool_ids)
        return out

    @classmethod
    def from_configurable(cls, configurable: Mapping[str, Any]) -> "GraphRunConfig":
        """Read our keys back out of a configurable dict that LangGraph has added to."""
        ours = {k: v for k, v in configurable.items() if k in _OUR_KEYS}
        node_models = {
            k.removesuffix(NODE_MODEL_SUFFIX): str(v)
            for k, v in configurable.items()
            if k.endswith(NODE_MODEL_SUFFIX) and v
        }
        node_tool_ids = {
            k.removesuffix(NODE_TOOL_IDS_SUFFIX): list(v)
            for k, v in configurable.items()
            if k.endswith(NODE_TOOL_IDS_SUFFIX) and v is not None
        }
        return cls.model_validate({**ours, "node_models": node_models, "node_tool_ids": node_tool_ids})

    def model_for(self, node: str | None) -> str:
        """The model a node uses: its `<node>__model` override, else the run's model."""
        if node and node in self.node_models:
            return self.node_models[node]
        return self.model

    def tool_ids_for(self, node: str | None) -> list[str] | None:
        """Allowed tools for a node: None = the catalog's tools for the graph, [] = deny all."""
        if node and node in self.node_tool_ids:
            return self.node_tool_ids[node]
        return self.tool_ids

    def end_user(self) -> str:
        """What LiteLLM records as `end_user`: the billing account unless the server side set `user`."""
        return self.user or self.billing_account_id

    def spend_logs_metadata(self, *, graph_id: str | None = None, thread_id: str | None = None) -> dict[str, Any]:
        """The `x-litellm-spend-logs-metadata` payload: how a spend log row finds its run.

        Beyond the contract's keys it carries `virtual_key_id`, so a charge the reconciler takes
        late lands on the same virtual key as one taken from the stream.
        """
        return {
            "run_id": self.run_id,
            "attempt": self.attempt,
            "graph_id": graph_id or self.graph_id,
            "billing_account_id": self.billing_account_id,
            "virtual_key_id": self.virtual_key_id,
            "thread_id": thread_id,
            "request_id": self.request_id,
            "trace_id": self.trace_id,
            "executor_type": str(self.executor_type) if self.executor_type else None,
        }
