"""Billing's domain errors; `cogni_app.api.errors` maps each to its HTTP status (402, 404, 401, 409, 400)."""


class InsufficientCredits(Exception):
    """Preflight refused the run: the balance is below the estimate (HTTP 402). Nothing was written."""

    def __init__(self, required: int, balance: int) -> None:
        super().__init__(f"insufficient credits: need about {required}, balance is {balance}")
        self.required = required
        self.balance = balance


class UnknownAccount(Exception):
    """No such billing account, or no such virtual key on it (HTTP 404 on operator routes)."""


class UnknownApiKey(UnknownAccount):
    """A presented API key that is unknown or revoked: it speaks for no account (HTTP 401)."""


class UnknownApiKeyId(Exception):
    """No API key with this id (HTTP 404 on the operator's key routes)."""


class RevokedApiKey(Exception):
    """An operation a revoked key cannot take, such as a rotation (HTTP 409): revocation is final."""


class InvalidGrant(ValueError):
    """A credit grant the ledger refuses: zero amount, a reserved reason, no reference (HTTP 400)."""


class UnknownLlmKeyId(Exception):
    """No LLM key with this id (HTTP 404 on the operator's LLM-key routes)."""


class RevokedLlmKey(Exception):
    """Rotating a revoked LLM key (HTTP 409): revocation is final; mint a new key for the account."""


class LlmKeyExists(Exception):
    """Minting a key for an account that has an active one (HTTP 409): rotate that key instead."""


class LlmKeysUnavailable(Exception):
    """Per-account LLM keys cannot be minted or derived: COGNI_LLM_KEY_SECRET unset or changed (HTTP 503)."""
