"""Billing: accounts, the charge ledger, preflight estimates."""

from cogni_app.billing.accounts import Accounts
from cogni_app.billing.api_keys import ApiKeyRecord, ApiKeys
from cogni_app.billing.errors import (
    InsufficientCredits,
    InvalidGrant,
    RevokedApiKey,
    UnknownAccount,
    UnknownApiKey,
    UnknownApiKeyId,
)
from cogni_app.billing.estimate import estimate_credits
from cogni_app.billing.holds import CreditHolds, Hold
from cogni_app.billing.ledger import Ledger, Provenance
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
    "Provenance",
    "RevokedApiKey",
    "UnknownAccount",
    "UnknownApiKey",
    "UnknownApiKeyId",
    "VirtualKey",
    "estimate_credits",
]
