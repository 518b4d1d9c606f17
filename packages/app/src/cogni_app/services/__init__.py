"""The app's use cases, one service per area, with plain typed inputs and results and domain errors.

Nothing here knows HTTP: `cogni_app.api` parses and authorises requests, calls these, and maps their
errors to statuses (`cogni_app.api.errors`).
"""

from dataclasses import dataclass

from cogni_app.services.accounts import AccountService, Activity, ModelMenu
from cogni_app.services.agents import AgentList, AgentsService
from cogni_app.services.chat import STREAMED, ChatService, ChatStarted, outcome_of
from cogni_app.services.chat_types import ChatCommand, ChatPolicy, RunIds
from cogni_app.services.console import ConsoleService, ServerAccess
from cogni_app.services.deletion import (
    DeletionPolicy,
    DeletionService,
    DeletionStarted,
    DeletionUnavailable,
    UnknownDeletion,
)
from cogni_app.services.errors import AgentsUnavailable, ChatRunRefused, GraphNotFound, RunFailedEarly
from cogni_app.services.keys import KeyService, RotatedKey
from cogni_app.services.llm_keys import IssuedLlmKey, LlmKeyService
from cogni_app.services.operator import Grant, IssuedKey, OperatorService


@dataclass(frozen=True)
class AppServices:
    """Every use case of one app process (built by `cogni_app.wiring.open_services`)."""

    chat: ChatService
    agents: AgentsService
    accounts: AccountService
    operator: OperatorService
    console: ConsoleService
    deletion: DeletionService
    keys: KeyService
    llm_keys: LlmKeyService


__all__ = [
    "STREAMED",
    "AccountService",
    "Activity",
    "AgentList",
    "AgentsService",
    "AgentsUnavailable",
    "AppServices",
    "ChatCommand",
    "ChatPolicy",
    "ChatRunRefused",
    "ChatService",
    "ChatStarted",
    "ConsoleService",
    "DeletionPolicy",
    "DeletionService",
    "DeletionStarted",
    "DeletionUnavailable",
    "Grant",
    "GraphNotFound",
    "IssuedKey",
    "IssuedLlmKey",
    "KeyService",
    "LlmKeyService",
    "ModelMenu",
    "OperatorService",
    "RotatedKey",
    "RunFailedEarly",
    "RunIds",
    "ServerAccess",
    "UnknownDeletion",
    "outcome_of",
]
