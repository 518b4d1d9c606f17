"""The ledger: the one writer of charge receipts, ledger rows and balance changes.

`commit_usage_fact` is the only path by which usage becomes a charge, whatever reported it (the
response, the stream, the reconciler). Its idempotency key is `(source_system, source_reference)`;
the receipt insert is `ON CONFLICT DO NOTHING`, so the first writer wins and every other writer,
concurrent or late, changes nothing. Receipt, ledger row and balance change commit together.
"""

from collections.abc import Callable
from decimal import Decimal
from typing import Any, Literal, get_args

import structlog
from psycopg import AsyncConnection
from psycopg.errors import ForeignKeyViolation
from psycopg.types.json import Jsonb

from cogni_ai_core import Charge, UsageFact, charge_idempotency_key, price_usage, validate_markup
from cogni_ai_core.observability import traced, usage_fact_attributes
from cogni_app import metrics
from cogni_app.billing.corrections import charge_correction, known_cost
from cogni_app.billing.errors import InsufficientCredits, UnknownAccount
from cogni_app.billing.types import LEDGER_CHARGE_REASON, CommitResult
from cogni_app.db import AppDatabase

Provenance = Literal["response", "stream", "reconcile"]
PROVENANCES: tuple[str, ...] = get_args(Provenance)
CHARGE_REASON = "llm_usage"

log = structlog.get_logger(__name__)

_INSERT_RECEIPT = """
INSERT INTO charge_receipts (
    billing_account_id, virtual_key_id, run_id, attempt, ingress_request_id, litellm_call_id,
    charged_credits, response_cost_usd, provenance, charge_reason, source_system, source_reference,
    graph_id, executor_type, provider, model, input_tokens, output_tokens, cache_read_tokens,
    cache_write_tokens, provider_cost_usd, markup, under_billed
) VALUES (
    %(account)s, %(vkey)s, %(run_id)s, %(attempt)s, %(ingress)s, %(call_id)s,
    %(credits)s, %(user_cost)s, %(provenance)s, %(reason)s, %(source_system)s, %(source_reference)s,
    %(graph_id)s, %(executor_type)s, %(provider)s, %(model)s, %(input_tokens)s, %(output_tokens)s,
    %(cache_read)s, %(cache_write)s, %(provider_cost)s, %(markup)s, %(under_billed)s
)
ON CONFLICT (source_system, source_reference) DO NOTHING
RETURNING id
"""


_SELECT_RECEIPT_FOR_UPDATE = (
    "SELECT * FROM charge_receipts WHERE source_system = %s AND source_reference = %s FOR UPDATE"
)
_RECEIPT_STATES = """
SELECT r.source_reference, r.under_billed AND c.id IS NULL AS needs_cost
FROM charge_receipts r LEFT JOIN charge_corrections c ON c.receipt_id = r.id
WHERE r.source_system = %s AND r.source_reference = ANY(%s)
"""


def pricing_model(fact: UsageFact) -> str | None:
    """The model name to judge free-ness by: LiteLLM's model group (our alias) when known, else the model."""
    raw = fact.usage_raw or {}
    group = raw.get("modelGroup") or raw.get("model_group")
    return str(group) if group else fact.model


class Ledger:
    """Charges usage facts and answers balance and activity questions for one app database."""

    def __init__(self, db: AppDatabase, *, markup: Decimal, is_free_model: Callable[[str | None], bool]) -> None:
        self.db = db
        self.markup = validate_markup(markup)
        self.is_free_model = is_free_model

    def _is_free(self, fact: UsageFact) -> bool:
        group = pricing_model(fact)
        return self.is_free_model(group) or (group != fact.model and self.is_free_model(fact.model))

    @traced("ledger.commit", lambda self, *a, **kw: usage_fact_attributes(kw.get("fact") or a[0], kw.get("provenance")))
    async def commit_usage_fact(
        self, fact: UsageFact, *, provenance: Provenance, ingress_request_id: str | None = None
    ) -> CommitResult:
        """Charge one usage unit exactly once. A replay returns `created=False` and changes nothing.

        Never refuses a charge for lack of credits (the call already happened): the balance may go
        negative. Raises UnknownAccount if the account does not exist.
        """
        if provenance not in PROVENANCES:
            raise ValueError(f"unknown provenance {provenance!r}")
        cost = known_cost(fact.cost_usd)
        charge = price_usage(cost, markup=self.markup, is_free=self._is_free(fact))
        source_system, source_reference = charge_idempotency_key(fact)
        params = {
            "account": fact.billing_account_id,
            "vkey": fact.virtual_key_id,
            "run_id": fact.run_id,
            "attempt": fact.attempt,
            "ingress": ingress_request_id,
            "call_id": fact.usage_unit_id,
            "credits": charge.credits,
            "user_cost": charge.user_cost_usd,
            "provenance": provenance,
            "reason": CHARGE_REASON,
            "source_system": source_system,
            "source_reference": source_reference,
            "graph_id": fact.graph_id,
            "executor_type": str(fact.executor_type),
            "provider": fact.provider,
            "model": pricing_model(fact),
            "input_tokens": fact.input_tokens,
            "output_tokens": fact.output_tokens,
            "cache_read": fact.cache_read_tokens,
            "cache_write": fact.cache_write_tokens,
            "provider_cost": cost,
            "markup": self.markup,
            "under_billed": charge.under_billed,
        }
        async with self.db.pool.connection() as conn, conn.transaction():
            try:
                cur = await conn.execute(_INSERT_RECEIPT, params)
            except ForeignKeyViolation as exc:
                raise UnknownAccount(f"no billing account {fact.billing_account_id!r}") from exc
            inserted = await cur.fetchone()
            if inserted is None:
                return await self._replayed(
                    conn, source_system, source_reference, fact, charge=charge, cost=cost, provenance=provenance
                )
            receipt_id = str(inserted["id"])
            cur = await conn.execute(
                "UPDATE billing_accounts SET balance_credits = balance_credits - %s WHERE id = %s "
                "RETURNING balance_credits",
                (charge.credits, fact.billing_account_id),
            )
            row = await cur.fetchone()
            assert row is not None  # the receipt's foreign key proved the account exists
            balance_after = int(row["balance_credits"])
            await conn.execute(
                "INSERT INTO credit_ledger (billing_account_id, virtual_key_id, amount, balance_after, reason,"
                " reference, metadata) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (
                    fact.billing_account_id,
                    fact.virtual_key_id,
                    -charge.credits,
                    balance_after,
                    LEDGER_CHARGE_REASON,
                    receipt_id,
                    Jsonb(
                        {
                            "source_system": source_system,
                            "source_reference": source_reference,
                            "run_id": fact.run_id,
                            "provenance": provenance,
                            "user_cost_usd": str(charge.user_cost_usd),
                        }
                    ),
                ),
            )
            if charge.under_billed:
                await conn.execute(
                    "INSERT INTO billing_alerts (kind, billing_account_id, receipt_id, message, details)"
                    " VALUES ('under_billed', %s, %s, %s, %s)",
                    (
                        fact.billing_account_id,
                        receipt_id,
                        f"paid model {pricing_model(fact)!r} reported no cost (or 0); charged 0 credits",
                        Jsonb({"source_reference": source_reference, "provenance": provenance}),
                    ),
                )
        metrics.BILLING_RECEIPTS.labels(provenance=provenance).inc()
        if charge.under_billed:
            metrics.BILLING_UNDERBILLED.inc()
            log.warning(
                "under-billed LLM call: paid model without cost, zero-credit receipt written",
                model=pricing_model(fact),
                source_reference=source_reference,
                billing_account_id=fact.billing_account_id,
                provenance=provenance,
            )
        return CommitResult(
            receipt_id=receipt_id,
            charged_credits=charge.credits,
            created=True,
            balance_after=balance_after,
            under_billed=charge.under_billed,
        )

    @staticmethod
    async def _replayed(
        conn: AsyncConnection[dict[str, Any]],
        source_system: str,
        source_reference: str,
        fact: UsageFact,
        *,
        charge: Charge,
        cost: Decimal | None,
        provenance: str,
    ) -> CommitResult:
        """The call was charged already; if it was charged without a cost and this report has one, correct it."""
        cur = await conn.execute(_SELECT_RECEIPT_FOR_UPDATE, (source_system, source_reference))
        row = await cur.fetchone()
        if row is None:  # the conflicting receipt vanished (account deleted meanwhile)
            raise UnknownAccount(f"no billing account {fact.billing_account_id!r}")
        corrected = 0
        if row["under_billed"] and cost is not None and not charge.under_billed and charge.credits > 0:
            corrected = await charge_correction(conn, row, charge, provider_cost_usd=cost, provenance=provenance)
        cur = await conn.execute(
            "SELECT balance_credits FROM billing_accounts WHERE id = %s", (fact.billing_account_id,)
        )
        balance = await cur.fetchone()
        return CommitResult(
            receipt_id=str(row["id"]),
            charged_credits=int(row["charged_credits"]),
            created=False,
            balance_after=int(balance["balance_credits"]) if balance else 0,
            under_billed=bool(row["under_billed"]) and not corrected,
            corrected_credits=corrected,
        )

    async def receipt_states(self, source_system: str, source_references: list[str]) -> dict[str, bool]:
        """For each key that has a receipt: True if it was charged without a cost and is not corrected yet."""
        if not source_references:
            return {}
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(_RECEIPT_STATES, (source_system, source_references))
            return {str(r["source_reference"]): bool(r["needs_cost"]) for r in await cur.fetchall()}

    async def balance(self, billing_account_id: str) -> int:
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT balance_credits FROM billing_accounts WHERE id = %s", (billing_account_id,)
            )
            row = await cur.fetchone()
        if row is None:
            raise UnknownAccount(f"no billing account {billing_account_id!r}")
        return int(row["balance_credits"])

    async def preflight(self, billing_account_id: str, estimated_credits: int) -> None:
        """Refuse a run up front (HTTP 402) when the balance is below the estimate. Writes nothing.

        An account in debt (negative balance) is refused even for free models (estimate 0).
        """
        balance = await self.balance(billing_account_id)
        if balance < estimated_credits:
            raise InsufficientCredits(required=estimated_credits, balance=balance)

    async def default_virtual_key(self, billing_account_id: str) -> str | None:
        """The account's first virtual key, used when a spend-log row does not name one."""
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT id FROM virtual_keys WHERE billing_account_id = %s ORDER BY created_at, id LIMIT 1",
                (billing_account_id,),
            )
            row = await cur.fetchone()
        return str(row["id"]) if row else None

    async def account_exists(self, billing_account_id: str) -> bool:
        async with self.db.pool.connection() as conn:
            cur = await conn.execute("SELECT 1 FROM billing_accounts WHERE id = %s", (billing_account_id,))
            return await cur.fetchone() is not None

    async def receipts_for_run(self, run_id: str) -> list[dict[str, Any]]:
        """Every receipt of a run (all attempts), oldest first; numeric columns as int/Decimal."""
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT * FROM charge_receipts WHERE run_id = %s ORDER BY created_at, id", (run_id,)
            )
            return [dict(r) for r in await cur.fetchall()]

    async def activity(self, billing_account_id: str, *, limit: int = 50) -> list[dict[str, Any]]:
        """An account's runs, newest first: calls, tokens, user cost (USD) and credits per run."""
        async with self.db.pool.connection() as conn:
            cur = await conn.execute(
                """
                SELECT r.run_id,
                       min(r.graph_id) AS graph_id,
                       array_agg(DISTINCT r.model) FILTER (WHERE r.model IS NOT NULL) AS models,
                       max(r.attempt) AS last_attempt,
                       count(*) AS llm_calls,
                       coalesce(sum(r.input_tokens), 0) AS input_tokens,
                       coalesce(sum(r.output_tokens), 0) AS output_tokens,
                       coalesce(sum(r.response_cost_usd), 0) + coalesce(sum(c.response_cost_usd), 0) AS cost_usd,
                       coalesce(sum(r.charged_credits), 0) + coalesce(sum(c.charged_credits), 0) AS credits,
                       bool_or(r.under_billed AND c.id IS NULL) AS under_billed,
                       min(r.created_at) AS started_at,
                       max(greatest(r.created_at, c.created_at)) AS last_charged_at
                FROM charge_receipts r LEFT JOIN charge_corrections c ON c.receipt_id = r.id
                WHERE r.billing_account_id = %s
                GROUP BY r.run_id
                ORDER BY max(r.created_at) DESC, r.run_id
                LIMIT %s
                """,
                (billing_account_id, limit),
            )
            rows = await cur.fetchall()
        return [
            {
                **row,
                "models": sorted(row["models"] or []),
                "llm_calls": int(row["llm_calls"]),
                "input_tokens": int(row["input_tokens"]),
                "output_tokens": int(row["output_tokens"]),
                "credits": int(row["credits"]),
                "cost_usd": Decimal(row["cost_usd"]),
            }
            for row in rows
        ]
