"""Billing errors the API maps to HTTP statuses (402, 403)."""


class InsufficientCredits(Exception):
    """Preflight refused the run: the balance is below the estimate (HTTP 402). Nothing was written."""

    def __init__(self, required: int, balance: int) -> None:
        super().__init__(f"insufficient credits: need about {required}, balance is {balance}")
        self.required = required
        self.balance = balance


class UnknownAccount(Exception):
    """No such billing account, or an API key that resolves to none (HTTP 403)."""
