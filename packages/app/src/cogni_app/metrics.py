"""Prometheus metrics of the app (all prefixed `cogni_`), registered once on the default registry."""

from prometheus_client import Counter, Gauge, Histogram

BILLING_RECEIPTS = Counter(
    "cogni_billing_receipts",
    "Charge receipts created, by provenance (response, stream, reconcile).",
    ["provenance"],
)
BILLING_UNDERBILLED = Counter(
    "cogni_billing_underbilled_calls",
    "Paid-model calls that reported no cost or a cost of 0: a zero-credit receipt was written (under-billing).",
)
RECONCILER_CALLS_RECONCILED = Counter(
    "cogni_reconciler_calls_reconciled",
    "Spend-log calls the reconciler billed because no receipt existed yet.",
)
BILLING_LAG = Histogram(
    "cogni_billing_lag_seconds",
    "Seconds from a call's spend-log end time to its charge receipt.",
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 21600),
)
UNBILLED_CALLS = Gauge(
    "cogni_unbilled_calls",
    "Spend-log calls with no receipt found at the start of the last sweep.",
)
UNBILLED_OUTSTANDING = Gauge(
    "cogni_unbilled_calls_outstanding",
    "Spend-log calls still without a receipt at the end of the last sweep (their commit failed; retried next).",
)
RECONCILER_CURSOR_LAG = Gauge(
    "cogni_reconciler_cursor_lag_seconds",
    "Age of the reconciler's committed cursor: grows while the spend log is unreachable or sweeps fail.",
)
SPEND_LOG_PRUNED = Counter(
    "cogni_spend_log_pruned_rows",
    "Spend-log sink rows deleted by retention (older than COGNI_SPEND_LOG_RETENTION_DAYS, already reconciled).",
)
BILLING_CORRECTIONS = Counter(
    "cogni_billing_corrections",
    "Calls charged without a cost whose real cost arrived later and was charged once as a correction.",
)
MODEL_ALLOWLIST_REFRESH_FAILURES = Counter(
    "cogni_model_allowlist_refresh_failures",
    "Failed fetches of LiteLLM /model/info (the last good list stays in use).",
)
MODEL_ALLOWLIST_MODELS = Gauge(
    "cogni_model_allowlist_models",
    "Models on the allowlist after the last successful fetch.",
)
RECONCILER_ERRORS = Counter(
    "cogni_reconciler_errors",
    "Reconcile passes that failed (spend log unreachable, ledger error), by stage (after_run, sweep).",
    ["stage"],
)
for _stage in ("after_run", "sweep"):
    RECONCILER_ERRORS.labels(stage=_stage)  # export 0 from the start so `increase()` sees the first error
