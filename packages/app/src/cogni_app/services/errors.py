"""Errors of the use cases (beyond the lower layers' own: UnknownModel, InsufficientCredits, UnknownAccount, ...).

`cogni_app.api.errors` maps every one of them to a status and body; nothing here knows about HTTP.
"""

from __future__ import annotations

from cogni_ai_core import AiExecutionErrorCode
from cogni_app.executors import CatalogFailure, RoutedAgent
from cogni_app.services.chat_types import RunIds


class ChatRunRefused(Exception):
    """A chat that got run ids but no stream; the ids travel with the error so the client can quote them."""

    def __init__(self, message: str, ids: RunIds) -> None:
        super().__init__(message)
        self.ids = ids


class GraphNotFound(ChatRunRefused):
    """No provider is routed for the graph id's namespace, or its provider does not have the graph."""


class RunFailedEarly(ChatRunRefused):
    """The run ended with an error before its first output (an upstream 429, a timeout, ...)."""

    def __init__(self, code: AiExecutionErrorCode, ids: RunIds) -> None:
        super().__init__(f"the run failed: {code}", ids)
        self.code: AiExecutionErrorCode = code


class AgentsUnavailable(Exception):
    """Some routed provider could not list its graphs: the agent list would be incomplete.

    Carries the failures (route, provider, reason) and the agents the other providers did list.
    """

    def __init__(self, failures: list[CatalogFailure], agents: list[RoutedAgent]) -> None:
        reasons = (f"namespace {f.route!r} (provider {f.provider!r}): {f.reason}" for f in failures)
        super().__init__("could not list the agents of " + "; ".join(reasons))
        self.failures = failures
        self.agents = agents
