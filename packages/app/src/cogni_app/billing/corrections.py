"""Zero, missing and late costs: one rule for every path, and the correction that charges a late cost once.

The rule (stream, response and reconciler alike, applied by the ledger): a reported cost of 0 is no
cost. A paid model's call without a cost is charged 0 credits, flagged `under_billed`, and raises the
alert (a `billing_alerts` row, `cogni_billing_underbilled_calls_total`, a warning log). A free model's
call is charged 0 and raises nothing.

When the same call is reported again with a real cost (the spend log priced it later, or the stream
had it while the spend log did not), the difference is charged once as a correction: a
`charge_corrections` row (unique per receipt, so two reconcilers racing charge it once) and a
`credit_ledger` row with reason `charge_correction`, in the transaction that found the receipt.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import structlog
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from cogni_ai_core import Charge
from cogni_app import metrics
from cogni_app.billing.types import LEDGER_CORRECTION_REASON

log = structlog.get_logger(__name__)

INSERT_CORRECTION = """
INSERT INTO charge_corrections (receipt_id, billing_account_id, charged_credits, provider_cost_usd,
                                response_cost_usd, provenance)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (receipt_id) DO NOTHING
RETURNING id
"""
DEBIT_ACCOUNT = (
    "UPDATE billing_accounts SET balance_credits = balance_credits - %s WHERE id = %s RETURNING balance_credits"
)
INSERT_CORRECTION_LEDGER_ROW = (
    "INSERT INTO credit_ledger (billing_account_id, virtual_key_id, amount, balance_after, reason, reference, metadata)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s)"
)


def known_cost(cost_usd: Decimal | None) -> Decimal | None:
    """The one rule: a cost of 0 (or below) is no cost; LiteLLM reports 0 when it could not price a call."""
    return cost_usd if cost_usd is not None and cost_usd > 0 else None


async def charge_correction(
    conn: AsyncConnection[dict[str, Any]],
    receipt: dict[str, Any],
    charge: Charge,
    *,
    provider_cost_usd: Decimal,
    provenance: str,
) -> int:
    """Charge `charge` as the correction of an under-billed `receipt`; 0 if it was already corrected."""
    cur = await conn.execute(
        INSERT_CORRECTION,
        (
            receipt["id"],
            receipt["billing_account_id"],
            charge.credits,
            provider_cost_usd,
            charge.user_cost_usd,
            provenance,
        ),
    )
    inserted = await cur.fetchone()
    if inserted is None:
        return 0
    cur = await conn.execute(DEBIT_ACCOUNT, (charge.credits, receipt["billing_account_id"]))
    row = await cur.fetchone()
    assert row is not None  # the receipt's foreign key proves the account exists
    await conn.execute(
        INSERT_CORRECTION_LEDGER_ROW,
        (
            receipt["billing_account_id"],
            receipt["virtual_key_id"],
            -charge.credits,
            int(row["balance_credits"]),
            LEDGER_CORRECTION_REASON,
            str(inserted["id"]),
            Jsonb(
                {
                    "receipt_id": str(receipt["id"]),
                    "source_reference": receipt["source_reference"],
                    "run_id": receipt["run_id"],
                    "provenance": provenance,
                    "user_cost_usd": str(charge.user_cost_usd),
                }
            ),
        ),
    )
    metrics.BILLING_CORRECTIONS.inc()
    log.warning(
        "late cost of an under-billed call charged as a correction",
        receipt_id=str(receipt["id"]),
        source_reference=receipt["source_reference"],
        credits=charge.credits,
        provenance=provenance,
    )
    return charge.credits
