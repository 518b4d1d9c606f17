"""What must hold after a batch, read straight from the three databases.

Per account (one account per batch):

- charged == expected: the sum of its receipts' credits equals the sum over its spend-log rows of
  `price_usage(spend, markup)` (ceil(cost x markup x 10^7)), exactly; the balance moved by as much;
- every acknowledged chat's server run ended in a terminal state (else it is *lost*);
- no run executed twice at once: no two checkpoints of a thread share a parent (a forked history),
  and no call was charged twice (*duplicated*);
- no receipt without a spend-log row (*orphan*).

Billing lag = receipt time - the spend-log row's call end time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row

from bench.chaos.traffic import Chat
from cogni_ai_core import price_usage
from cogni_litellm_sink.config import FREE_ALIAS
from cogni_litellm_sink.schema import TABLE

TERMINAL = ("success", "error", "interrupted", "timeout")
SPEND_ROWS = f"SELECT * FROM {TABLE} WHERE end_user = %s"
RECEIPTS = (
    "SELECT litellm_call_id, charged_credits, created_at, run_id FROM charge_receipts WHERE billing_account_id = %s"
)
BALANCE = "SELECT balance_credits FROM billing_accounts WHERE id = %s"
THREAD_RUNS = "SELECT thread_id::text, run_id::text, status, attempt FROM runs WHERE thread_id = ANY(%s::uuid[])"
FORKS = (
    "SELECT thread_id::text, parent_checkpoint_id, count(*) FROM checkpoints WHERE thread_id = ANY(%s)"
    " AND checkpoint_ns = '' AND parent_checkpoint_id IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 1"
)


@dataclass
class Verdict:
    """The invariants of one batch, as counts (0 everywhere is a pass) and the evidence behind them."""

    runs: int
    acknowledged: int
    lost: int
    duplicated: int
    unbilled: int
    orphan_receipts: int
    mismatched_credits: int
    charged: int
    expected: int
    balance_drift: int
    llm_calls: int
    ran_unacknowledged: int = 0
    lags_s: list[float] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not (
            self.lost or self.duplicated or self.unbilled or self.orphan_receipts or self.mismatched_credits
            or self.charged != self.expected or self.balance_drift
        )  # fmt: skip


def expected_credits(row: dict[str, Any], markup: Decimal) -> int:
    """What the ledger must charge for one spend-log row (the project's pricing function)."""
    is_free = row.get("model_group") == FREE_ALIAS.alias or row.get("model") == FREE_ALIAS.alias
    return price_usage(Decimal(row["spend"] or 0), markup=markup, is_free=is_free).credits


def spend_rows(sink_db: str, account_id: str) -> list[dict[str, Any]]:
    with psycopg.connect(sink_db, row_factory=dict_row) as conn:
        try:
            return [dict(r) for r in conn.execute(SPEND_ROWS, (account_id,))]
        except psycopg.errors.UndefinedTable:
            return []


def unbilled_calls(sink_db: str, app_db: str, account_id: str, markup: Decimal) -> list[dict[str, Any]]:
    """Spend-log rows of the account that cost something and have no receipt."""
    rows = spend_rows(sink_db, account_id)
    with psycopg.connect(app_db) as conn:
        billed = {r[0] for r in conn.execute(RECEIPTS, (account_id,))}
    return [r for r in rows if expected_credits(r, markup) > 0 and r["call_id"] not in billed]


def judge(
    *,
    server_db: str,
    app_db: str,
    sink_db: str,
    account_id: str,
    initial_credits: int,
    markup: Decimal,
    chats: list[Chat],
    thread_of: dict[str, str],
) -> Verdict:
    rows = {r["call_id"]: r for r in spend_rows(sink_db, account_id)}
    with psycopg.connect(app_db, row_factory=dict_row) as conn:
        receipts = [dict(r) for r in conn.execute(RECEIPTS, (account_id,))]
        balance_row = conn.execute(BALANCE, (account_id,)).fetchone()
    thread_ids = list(thread_of.values())
    with psycopg.connect(server_db, row_factory=dict_row) as conn:
        runs = [dict(r) for r in conn.execute(THREAD_RUNS, (thread_ids,))]
        forks = [dict(r) for r in conn.execute(FORKS, (thread_ids,))]
    evidence: list[str] = []

    acknowledged = [c for c in chats if c.acknowledged]
    runs_by_thread: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        runs_by_thread.setdefault(run["thread_id"], []).append(run)
    lost = 0
    for chat in acknowledged:
        thread_runs = runs_by_thread.get(thread_of[chat.state_key], [])
        if not thread_runs or any(r["status"] not in TERMINAL for r in thread_runs):
            lost += 1
            evidence.append(f"lost: chat {chat.state_key} run {chat.run_id}: server runs {thread_runs}")

    # Not a failed invariant, but what a user would notice: told the chat failed, yet the run went on.
    ran_unacknowledged = 0
    for chat in chats:
        thread_runs = runs_by_thread.get(thread_of[chat.state_key], [])
        if not chat.acknowledged and any(r["status"] == "success" for r in thread_runs):
            ran_unacknowledged += 1
            evidence.append(f"not acknowledged (status {chat.status}) but its server run succeeded: {chat.state_key}")

    calls_charged: dict[str, int] = {}
    orphan = mismatched = 0
    lags: list[float] = []
    for receipt in receipts:
        call = receipt["litellm_call_id"]
        calls_charged[call] = calls_charged.get(call, 0) + 1
        row = rows.get(call)
        if row is None:
            orphan += 1
            evidence.append(f"receipt without spend-log row: call {call} run {receipt['run_id']}")
            continue
        want = expected_credits(row, markup)
        if receipt["charged_credits"] != want:
            mismatched += 1
            evidence.append(f"call {call}: charged {receipt['charged_credits']}, spend log says {want}")
        lags.append(lag_seconds(row, receipt["created_at"]))
    duplicated_calls = sum(n - 1 for n in calls_charged.values() if n > 1)
    for fork in forks:
        evidence.append(f"forked checkpoint history: thread {fork['thread_id']} parent {fork['parent_checkpoint_id']}")
    unbilled = [r for r in rows.values() if expected_credits(r, markup) > 0 and r["call_id"] not in calls_charged]
    for row in unbilled:
        evidence.append(f"unbilled: call {row['call_id']} spend {row['spend']} status {row['status']}")
    charged = sum(int(r["charged_credits"]) for r in receipts)
    expected = sum(expected_credits(r, markup) for r in rows.values())
    balance = int(balance_row["balance_credits"]) if balance_row else 0
    drift = balance - (initial_credits - charged)
    if charged != expected:
        evidence.append(f"charged {charged} credits, the spend log says {expected}")
    if drift:
        evidence.append(f"balance {balance} is {drift} off initial - charged")
    return Verdict(
        runs=len(chats),
        acknowledged=len(acknowledged),
        lost=lost,
        duplicated=duplicated_calls + len({f["thread_id"] for f in forks}),
        unbilled=len(unbilled),
        orphan_receipts=orphan,
        mismatched_credits=mismatched,
        charged=charged,
        expected=expected,
        balance_drift=drift,
        llm_calls=len(rows),
        ran_unacknowledged=ran_unacknowledged,
        lags_s=lags,
        evidence=evidence,
    )


def lag_seconds(row: dict[str, Any], receipt_at: datetime) -> float:
    when = row.get("end_time") or row["inserted_at"]
    return max(0.0, (receipt_at - when).total_seconds())


def nonterminal_runs(server_db: str, thread_ids: list[str]) -> int:
    with psycopg.connect(server_db, connect_timeout=3) as conn:
        rows = conn.execute(THREAD_RUNS, (thread_ids,)).fetchall()
    return sum(1 for r in rows if r[2] not in TERMINAL)
