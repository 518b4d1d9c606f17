"""Prometheus counters of the executors (names prefixed `cogni_app_executor_`)."""

from prometheus_client import Counter

TOOL_STREAM_OVERFLOW = Counter(
    "cogni_app_executor_tool_stream_overflow_total",
    "Tool call data dropped by the stream translator's caps",
    ["kind"],  # args: a call's arguments passed 64 KB; pending: more than 100 calls/results waiting
)
USAGE_EVENTS_REJECTED = Counter(
    "cogni_app_executor_usage_events_rejected_total",
    "Per-call usage events that failed validation (the reconciler bills those calls later)",
)
RUNS_FINISHED = Counter(
    "cogni_app_executor_runs_total",
    "Graph runs by executor and outcome",
    ["executor", "outcome"],
)
