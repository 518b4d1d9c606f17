"""Billing: accounts, the charge ledger, preflight estimates."""

from cogni_app.billing.accounts import Accounts
from cogni_app.billing.api_keys import ApiKeyRecord, ApiKeys
from cogni_app.billing.errors import (
    InsufficientCredits,
    InvalidGrant,
    LlmKeyExists,
    LlmKeysUnavailable,
    RevokedApiKey,
    RevokedLlmKey,
    UnknownAccount,
    UnknownApiKey,
    UnknownApiKeyId,
    UnknownLlmKeyId,
)
from cogni_app.billing.estimate import estimate_credits
from cogni_app.billing.holds import CreditHolds, Hold
from cogni_app.billing.ledger import Ledger, Provenance
from cogni_app.billing.llm_keys import LlmKeyDeriver, LlmKeyRecord, LlmKeys
from cogni_app.billing.types import Account, ApiKeyPrincipal, CommitResult, VirtualKey

__all__ = [
    "Account",
    "Accounts",
    "ApiKeyPrincipal",
    "ApiKeyRecord",
    "ApiKeys",
    "CommitResult",
    "CreditHolds",
    "Hold",
    "InsufficientCredits",
    "InvalidGrant",
    "Ledger",
    "LlmKeyDeriver",
    "LlmKeyExists",
    "LlmKeyRecord",
    "LlmKeys",
    "LlmKeysUnavailable",
    "Provenance",
    "RevokedApiKey",
    "RevokedLlmKey",
    "UnknownAccount",
    "UnknownApiKey",
    "UnknownApiKeyId",
    "UnknownLlmKeyId",
    "VirtualKey",
    "estimate_credits",
]
