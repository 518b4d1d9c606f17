"""What an API key's account may do besides chatting: authenticate, see the models, see its activity."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cogni_app.billing import Accounts, ApiKeyPrincipal, Ledger
from cogni_app.models import ModelAllowlist, ModelInfo


@dataclass(frozen=True)
class ModelMenu:
    models: list[ModelInfo]
    default: ModelInfo


@dataclass(frozen=True)
class Activity:
    billing_account_id: str
    balance_credits: int
    runs: list[dict[str, Any]]


class AccountService:
    def __init__(self, *, accounts: Accounts, ledger: Ledger, models: ModelAllowlist) -> None:
        self._accounts = accounts
        self._ledger = ledger
        self._models = models

    async def authenticate(self, api_key: str) -> ApiKeyPrincipal:
        """The account a key speaks for; UnknownApiKey when it is unknown or revoked."""
        return await self._accounts.resolve_api_key(api_key)

    def models(self) -> ModelMenu:
        """LiteLLM's aliases the app allows, with the default the app picks when none is requested."""
        return ModelMenu(models=self._models.models(), default=self._models.default_model())

    async def activity(self, billing_account_id: str, *, limit: int) -> Activity:
        """The account's runs, newest first (calls, tokens, cost after markup, credits) and its balance."""
        runs = await self._ledger.activity(billing_account_id, limit=limit)
        balance = await self._ledger.balance(billing_account_id)
        return Activity(billing_account_id=billing_account_id, balance_credits=balance, runs=runs)
