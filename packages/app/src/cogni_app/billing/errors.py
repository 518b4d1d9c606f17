"""Billing's domain errors; `cogni_app.api.errors` maps each to its HTTP status (402, 404, 403, 400)."""


class InsufficientCredits(Exception):
    """Preflight refused the run: the balance is below the estimate (HTTP 402). Nothing was written."""

    def __init__(self, required: int, balance: int) -> None:
        super().__init__(f"insufficient credits: need about {required}, balance is {balance}")
        self.required = required
        self.balance = balance


class UnknownAccount(Exception):
    """No such billing account, or no such virtual key on it (HTTP 404 on operator routes)."""


class UnknownApiKey(UnknownAccount):
    """A presented API key that is unknown or revoked: it speaks for no account (HTTP 403)."""


class InvalidGrant(ValueError):
    """A credit grant the ledger refuses: zero amount, a reserved reason, no reference (HTTP 400)."""
