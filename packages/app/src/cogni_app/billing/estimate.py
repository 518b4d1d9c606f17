"""Preflight estimate: a deliberately conservative guess at what one LLM call of a run will cost.

It is a guard against starting runs an account clearly cannot pay for, not a cap: the real charge
comes from LiteLLM afterwards and may exceed it (the balance may then go negative).

    prompt tokens  = context tokens + ceil(prompt_chars / 4)  (the thread so far, plus the new message at
                     about 4 characters per token; the context is the largest call of the thread's last
                     runs, prompt + answer, from their receipts)
    output tokens  = ASSUMED_MAX_OUTPUT_TOKENS               (1024: a full-length answer)
    provider USD   = prompt tokens x input price + output tokens x output price
                     prices per model from MODEL_PRICES_USD_PER_TOKEN, else the flat
                     FALLBACK_USD_PER_TOKEN for both (priced like a large model: conservative)
    credits        = ceil(provider USD x markup x CREDITS_PER_USD)   (same pricing as a charge)
    free models    = 0
"""

import math
from decimal import Decimal

from cogni_ai_core import usd_to_credits, user_cost_usd

CHARS_PER_TOKEN = 4
ASSUMED_MAX_OUTPUT_TOKENS = 1024
FALLBACK_USD_PER_TOKEN = Decimal("0.00001")  # $0.01 per 1K tokens, input and output alike
MODEL_PRICES_USD_PER_TOKEN: dict[str, tuple[Decimal, Decimal]] = {
    # alias: (input, output) USD per token, LiteLLM's list prices for the underlying model
    "gpt-4o-mini": (Decimal("0.00000015"), Decimal("0.0000006")),
    "gpt-4o": (Decimal("0.0000025"), Decimal("0.00001")),
}


def estimate_tokens(prompt_chars: int, context_tokens: int = 0) -> tuple[int, int]:
    """(prompt tokens, output tokens) assumed for a new message of this many characters on a thread."""
    if prompt_chars < 0 or context_tokens < 0:
        raise ValueError("prompt_chars and context_tokens cannot be negative")
    return context_tokens + math.ceil(prompt_chars / CHARS_PER_TOKEN), ASSUMED_MAX_OUTPUT_TOKENS


def estimate_credits(
    model_id: str, prompt_chars: int, *, is_free: bool, markup: Decimal, context_tokens: int = 0
) -> int:
    """Credits a run on this model with this prompt on this thread is expected to cost at most (roughly)."""
    prompt_tokens, output_tokens = estimate_tokens(prompt_chars, context_tokens)
    if is_free:
        return 0
    input_price, output_price = MODEL_PRICES_USD_PER_TOKEN.get(
        model_id, (FALLBACK_USD_PER_TOKEN, FALLBACK_USD_PER_TOKEN)
    )
    provider_usd = prompt_tokens * input_price + output_tokens * output_price
    return usd_to_credits(user_cost_usd(provider_usd, markup))
