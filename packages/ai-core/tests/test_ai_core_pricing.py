from decimal import Decimal

import pytest

from cogni_ai_core import CREDITS_PER_USD, InvalidMarkup, price_usage, usd_to_credits


def test_paid_call_at_markup_two_charges_80_credits() -> None:
    charge = price_usage(Decimal("0.000004"), markup=Decimal("2.0"), is_free=False)
    assert charge.credits == 80
    assert charge.user_cost_usd == Decimal("0.000008")
    assert not charge.under_billed


def test_one_ceil_at_the_end_not_per_step() -> None:
    # 0.00000001 USD x 1.5 = 0.000000015 USD = 0.15 credits -> ceil once -> 1 credit
    assert price_usage(Decimal("0.00000001"), markup=Decimal("1.5"), is_free=False).credits == 1
    # exact multiples do not round up
    assert usd_to_credits(Decimal("0.0000002")) == 2
    assert usd_to_credits(Decimal(1)) == CREDITS_PER_USD


def test_free_model_charges_nothing_even_with_a_cost() -> None:
    charge = price_usage(Decimal("0.5"), markup=Decimal("2"), is_free=True)
    assert (charge.credits, charge.under_billed) == (0, False)


def test_paid_call_without_cost_is_flagged_under_billed() -> None:
    charge = price_usage(None, markup=Decimal("2"), is_free=False)
    assert (charge.credits, charge.under_billed) == (0, True)


def test_markup_below_one_is_rejected() -> None:
    with pytest.raises(InvalidMarkup, match=r">= 1\.0"):
        price_usage(Decimal("0.1"), markup=Decimal("0.9"), is_free=False)


def test_float_noise_in_a_provider_cost_does_not_tip_the_ceil() -> None:
    # LiteLLM's float arithmetic: 0.1 + 0.2 arrives as 0.30000000000000004 on the stream, while the
    # spend-log sink's numeric column holds 0.3 (15 significant digits). Both must charge the same.
    from_stream = price_usage(Decimal(str(0.1 + 0.2)), markup=Decimal("2.0"), is_free=False)
    from_spend_log = price_usage(Decimal("0.300000000000000"), markup=Decimal("2.0"), is_free=False)
    assert from_stream.credits == from_spend_log.credits == 6_000_000
    # Real digits are kept: 15 significant digits of a tiny cost still count.
    assert price_usage(Decimal("1.23456789012345e-7"), markup=Decimal("1"), is_free=False).credits == 2


def test_observed_litellm_float_charges_the_true_price() -> None:
    # Seen from LiteLLM in the stack test: a $0.0000084 call reported as 8.4000000000000001e-06.
    assert price_usage(Decimal("8.4000000000000001e-06"), markup=Decimal("2.0"), is_free=False).credits == 168
