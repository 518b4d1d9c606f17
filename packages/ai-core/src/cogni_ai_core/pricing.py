"""Pricing arithmetic: provider cost -> user cost (markup) -> credits, in Decimal, one ceil at the end."""

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

CREDITS_PER_USD = 10_000_000
DEFAULT_MARKUP_FACTOR = Decimal("2.0")
COST_SIGNIFICANT_DIGITS = 15


class InvalidMarkup(ValueError):
    """Markup below 1.0 would sell below cost."""


def validate_markup(markup: Decimal | float | str) -> Decimal:
    value = Decimal(str(markup))
    if value < 1:
        raise InvalidMarkup(f"USER_PRICE_MARKUP_FACTOR must be >= 1.0, got {value}")
    return value


def normalize_provider_cost(provider_cost_usd: Decimal) -> Decimal:
    """A provider cost rounded to 15 significant digits.

    LiteLLM computes costs in IEEE doubles, so `0.1 + 0.2` arrives as `0.30000000000000004`; digits
    past the 15th are representation noise. Postgres keeps exactly 15 when the spend-log sink stores
    the same float as `numeric`, so rounding here too makes the stream path and the reconcile path
    price one call identically (otherwise the noise can tip the final ceil by one credit).
    """
    return Decimal(format(Decimal(provider_cost_usd), f".{COST_SIGNIFICANT_DIGITS}g"))


def user_cost_usd(provider_cost_usd: Decimal, markup: Decimal) -> Decimal:
    """What the user pays in USD: (normalised) provider cost x markup, exact."""
    return normalize_provider_cost(provider_cost_usd) * validate_markup(markup)


def usd_to_credits(usd: Decimal) -> int:
    """Credits for a USD amount: ceil(usd x CREDITS_PER_USD), the only rounding step."""
    if usd < 0:
        raise ValueError("a cost cannot be negative")
    return int((usd * CREDITS_PER_USD).to_integral_value(rounding=ROUND_CEILING))


@dataclass(frozen=True)
class Charge:
    """The outcome of pricing one usage unit."""

    credits: int
    user_cost_usd: Decimal
    under_billed: bool
    """True when a paid model reported no cost: a zero-credit receipt is written and an alert raised."""


def price_usage(provider_cost_usd: Decimal | None, *, markup: Decimal, is_free: bool) -> Charge:
    """Price one call. Free models charge 0; a paid call with no cost charges 0 and is flagged."""
    markup = validate_markup(markup)
    if is_free:
        return Charge(credits=0, user_cost_usd=Decimal(0), under_billed=False)
    if provider_cost_usd is None:
        return Charge(credits=0, user_cost_usd=Decimal(0), under_billed=True)
    cost = user_cost_usd(provider_cost_usd, markup)
    return Charge(credits=usd_to_credits(cost), user_cost_usd=cost, under_billed=False)
