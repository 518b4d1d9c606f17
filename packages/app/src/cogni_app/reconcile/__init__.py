"""Reconciliation against LiteLLM's spend log, the source of truth for spend."""

from cogni_app.reconcile.api_source import LiteLLMSpendLogsApiSource
from cogni_app.reconcile.reconciler import Reconciler
from cogni_app.reconcile.records import SpendLogRecord, SpendLogSource
from cogni_app.reconcile.sink_source import SinkTableSource

__all__ = ["LiteLLMSpendLogsApiSource", "Reconciler", "SinkTableSource", "SpendLogRecord", "SpendLogSource"]
