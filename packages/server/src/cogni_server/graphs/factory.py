"""Graph factories in every form a LangGraph project may use, called the way the reference calls them.

A factory is any callable named in ``graphs``. What it receives is read from its signature, as the
reference does (type annotations first, then parameter names):

- a parameter annotated ``RunnableConfig`` (or else named ``config``) gets the run's config;
- one annotated ``ServerRuntime`` (or else named ``runtime``) gets a
  ``langgraph_sdk.runtime.ServerRuntime``: ``access_context``, ``user``, ``store`` and, for
  ``threads.create_run``, the run's ``context`` (``runtime.execution_runtime``);
- a single parameter with another name and type gets the config (factories written before
  ``ServerRuntime`` existed take exactly one config argument);
- a required parameter that is none of these is a start-up error naming it.

The call may return a compiled graph or a ``StateGraph``, a coroutine of one, or a (sync or async)
context manager / generator yielding one; a context manager stays open while the graph is in use and
is closed afterwards (after the run, after the state read, after the schema request).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from langgraph_sdk.runtime import _ExecutionRuntime, _ReadRuntime

from cogni_server.graphs.config import GraphLoadError

ACCESS_CONTEXTS = ("threads.create_run", "threads.update", "threads.read", "assistants.read")


class Inject(Enum):
    CONFIG = "config"
    RUNTIME = "runtime"


@dataclass(frozen=True)
class FactorySignature:
    """How to call one factory: positional-only arguments first, then keyword arguments."""

    positional: tuple[Inject, ...] = ()
    keyword: tuple[tuple[str, Inject], ...] = ()

    @property
    def wants_runtime(self) -> bool:
        return Inject.RUNTIME in self.positional or any(kind is Inject.RUNTIME for _, kind in self.keyword)


def _annotation_kind(annotation: Any) -> Inject | None:
    if annotation is inspect.Parameter.empty:
        return None
    text = annotation if isinstance(annotation, str) else repr(annotation)
    name = getattr(annotation, "__name__", "")
    if "ServerRuntime" in text or name in ("ServerRuntime", "_ExecutionRuntime", "_ReadRuntime"):
        return Inject.RUNTIME
    if "RunnableConfig" in text or name == "RunnableConfig":
        return Inject.CONFIG
    return None


def read_signature(graph_id: str, factory: Callable[..., Any]) -> FactorySignature:
    """Classify the factory's parameters once, at start-up; an unfillable one is a GraphLoadError."""
    try:
        params = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):  # a builtin or C callable: the legacy one-config-argument form
        return FactorySignature(positional=(Inject.CONFIG,))
    named = [p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    positional: list[Inject] = []
    keyword: list[tuple[str, Inject]] = []
    for param in named:
        kind = _annotation_kind(param.annotation)
        if kind is None:
            if param.name in ("runtime", "server_runtime"):
                kind = Inject.RUNTIME
            elif param.name == "config" or (len(named) == 1 and param.default is param.empty):
                kind = Inject.CONFIG
        if kind is None:
            if param.default is not param.empty:
                continue  # left to its default
            raise GraphLoadError(
                f"graph {graph_id!r}: factory parameter {param.name!r} is neither a RunnableConfig (config) nor a"
                " ServerRuntime (runtime); annotate it with one of those types or give it a default"
            )
        if param.kind is param.POSITIONAL_ONLY:
            if keyword:
                raise GraphLoadError(f"graph {graph_id!r}: factory parameter {param.name!r} cannot be filled in order")
            positional.append(kind)
        else:
            keyword.append((param.name, kind))
    return FactorySignature(tuple(positional), tuple(keyword))


def server_runtime(access_context: str, *, store: Any, user: Any, context: Any) -> Any:
    """The ``ServerRuntime`` the factory sees: the execution variant (with ``context``) for runs only."""
    if access_context not in ACCESS_CONTEXTS:
        raise ValueError(f"unknown access context {access_context!r}")
    if access_context == "threads.create_run":
        return _ExecutionRuntime(access_context="threads.create_run", user=user, store=store, context=context)
    return _ReadRuntime(access_context=access_context, user=user, store=store)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def made_graph(
    graph_id: str,
    spec: str,
    factory: Callable[..., Any],
    signature: FactorySignature,
    config: Mapping[str, Any],
    runtime: Callable[[], Any],
) -> AsyncIterator[Any]:
    """Call ``factory`` and yield what it made; a context manager it returns is open while in use.

    Failing to make the graph is a GraphLoadError naming the factory; an exception raised while the
    graph is in use passes through unchanged (into the factory's context manager first).
    """
    values = {Inject.CONFIG: config}
    if signature.wants_runtime:
        values[Inject.RUNTIME] = runtime()
    args = [values[kind] for kind in signature.positional]
    kwargs = {name: values[kind] for name, kind in signature.keyword}
    async with contextlib.AsyncExitStack() as stack:
        try:
            made = factory(*args, **kwargs)
            if inspect.isawaitable(made):
                made = await made
            if inspect.isasyncgen(made):
                made = contextlib.asynccontextmanager(lambda: made)()
            elif inspect.isgenerator(made):
                made = contextlib.contextmanager(lambda: made)()
            if hasattr(made, "__aenter__") and hasattr(made, "__aexit__"):
                made = await stack.enter_async_context(made)
            elif hasattr(made, "__enter__") and hasattr(made, "__exit__"):
                made = stack.enter_context(made)
        except GraphLoadError:
            raise
        except Exception as exc:
            raise GraphLoadError(f"graph {graph_id!r}: factory {spec!r} failed: {type(exc).__name__}: {exc}") from exc
        yield made
