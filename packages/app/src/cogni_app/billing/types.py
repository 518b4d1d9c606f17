"""Plain records returned by the billing services."""

from dataclasses import dataclass
from datetime import datetime

LEDGER_CHARGE_REASON = "charge_receipt"  # credit_ledger.reason of the ledger's own charges; grants may not use it
LEDGER_CORRECTION_REASON = "charge_correction"  # a late real cost of a call first charged without one
RESERVED_LEDGER_REASONS = (LEDGER_CHARGE_REASON, LEDGER_CORRECTION_REASON)


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    balance_credits: int
    created_at: datetime


@dataclass(frozen=True)
class VirtualKey:
    id: str
    billing_account_id: str
    label: str


@dataclass(frozen=True)
class ApiKeyPrincipal:
    """Who an API key speaks for: the account and the virtual key its calls are charged to."""

    billing_account_id: str
    virtual_key_id: str


@dataclass(frozen=True)
class CommitResult:
    """Outcome of one `commit_usage_fact`. `created=False` means a replay: nothing changed."""

    receipt_id: str
    charged_credits: int
    created: bool
    balance_after: int
    under_billed: bool
    corrected_credits: int = 0
    """A replay that brought the real cost of a call charged without one: what the correction charged."""
