"""Billing: accounts, the charge ledger, preflight estimates."""

from cogni_app.billing.accounts import Accounts
from cogni_app.billing.errors import InsufficientCredits, InvalidGrant, UnknownAccount, UnknownApiKey
from cogni_app.billing.estimate import estimate_credits
from cogni_app.billing.holds import CreditHolds, Hold
from cogni_app.billing.ledger import Ledger, Provenance
from cogni_app.billing.types import Account, ApiKeyPrincipal, CommitResult, VirtualKey

__all__ = [
    "Account",
    "Accounts",
    "ApiKeyPrincipal",
    "CommitResult",
    "CreditHolds",
    "Hold",
    "InsufficientCredits",
    "InvalidGrant",
    "Ledger",
    "Provenance",
    "UnknownAccount",
    "UnknownApiKey",
    "VirtualKey",
    "estimate_credits",
]
