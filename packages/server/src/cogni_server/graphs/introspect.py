"""JSON schemas and the drawable graph of a compiled graph, shaped as the official clients read them.

Each schema is best effort: a graph whose types cannot be expressed as JSON Schema gets ``None`` for
that entry (the SDK's ``GraphSchema`` documents exactly that) instead of failing the whole request.
State declared with ``typing.TypedDict`` (rejected by pydantic on Python 3.11) is described through
an equivalent ``typing_extensions`` twin (see ``typeddict_compat``).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from typing import Any

from langgraph.pregel import Pregel
from pydantic import TypeAdapter, create_model

from cogni_server.graphs.typeddict_compat import compat_type, needs_compat


def _safe(fn: Callable[[], Any]) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn()
    except Exception:
        return None


def _typeddict_fallback(typ: Any) -> dict[str, Any] | None:
    """Schema of a stdlib TypedDict pydantic rejects on 3.11, via its typing_extensions twin."""
    if typ is None or not needs_compat(typ):
        return None
    return _safe(lambda: TypeAdapter(compat_type(typ)).json_schema())


def _with_fallback(primary: Callable[[], Any], typ: Any) -> Any:
    found = _safe(primary)
    return found if found is not None else _typeddict_fallback(typ)


def state_jsonschema(graph: Pregel) -> dict[str, Any] | None:
    """The full state: the StateGraph's state schema, else a model over every channel."""
    builder = getattr(graph, "builder", None)
    if builder is not None and getattr(builder, "state_schema", None) is not None:
        from langgraph.graph.state import _get_json_schema  # the helper the graph's own schemas use

        return _with_fallback(
            lambda: _get_json_schema(
                typ=builder.state_schema,
                schemas=builder.schemas,
                channels=builder.channels,
                name=graph.get_name("State"),
            ),
            builder.state_schema,
        )
    from langgraph.channels.base import BaseChannel

    def channel_model() -> dict[str, Any]:
        fields: Any = {
            name: (channel.ValueType, None)
            for name, channel in graph.channels.items()
            if isinstance(channel, BaseChannel) and not name.startswith("__")
        }
        return create_model(graph.get_name("State"), **fields).model_json_schema()

    return _safe(channel_model)


def graph_schemas(graph_id: str, graph: Pregel) -> dict[str, Any]:
    """``{"graph_id", "input_schema", "output_schema", "state_schema", "config_schema", "context_schema"}``."""
    builder = getattr(graph, "builder", None)
    return {
        "graph_id": graph_id,
        "input_schema": _with_fallback(graph.get_input_jsonschema, getattr(builder, "input_schema", None)),
        "output_schema": _with_fallback(graph.get_output_jsonschema, getattr(builder, "output_schema", None)),
        "state_schema": state_jsonschema(graph),
        "config_schema": _safe(graph.get_config_jsonschema),
        "context_schema": _with_fallback(graph.get_context_jsonschema, graph.context_schema),
    }


def drawable_graph(graph: Pregel, xray: bool | int) -> dict[str, Any]:
    """``{"nodes": [...], "edges": [...]}``; node data that is not JSON becomes its string form."""
    drawn = graph.get_graph(xray=xray).to_json()
    result: dict[str, Any] = json.loads(json.dumps(drawn, default=str))
    return result


def subgraph_schemas(graph_id: str, graph: Pregel, namespace: str | None, recurse: bool) -> dict[str, dict[str, Any]]:
    """Namespace -> schemas of each subgraph (only the one at ``namespace`` when given)."""
    found: dict[str, dict[str, Any]] = {}
    for ns, subgraph in graph.get_subgraphs(namespace=namespace, recurse=recurse):
        if isinstance(subgraph, Pregel):
            found[ns] = graph_schemas(graph_id, subgraph)
    return found
