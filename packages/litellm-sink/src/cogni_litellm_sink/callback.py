"""The LiteLLM callback: `litellm_settings: callbacks: cogni_litellm_sink.callback.spend_sink`.

LiteLLM is imported only if present, so this package imports in the workspace venv (which has no
litellm) for tests of the mapping and the writer.
"""

from __future__ import annotations

import atexit
import logging
from collections.abc import Mapping
from typing import Any

from cogni_litellm_sink.mapping import row_from_callback_kwargs
from cogni_litellm_sink.writer import SpendLogWriter

try:
    from litellm.integrations.custom_logger import CustomLogger as _LoggerBase
except ImportError:  # pragma: no cover - depends on the environment
    _LoggerBase = object

log = logging.getLogger("cogni_litellm_sink")


class SpendSink(_LoggerBase):
    """Turns every LiteLLM success/failure event into one queued spend-log row."""

    def __init__(self, writer: SpendLogWriter | None = None) -> None:
        super().__init__()
        self.writer = writer or SpendLogWriter()

    def record(self, kwargs: Mapping[str, Any], status: str) -> None:
        """Map and enqueue; never raises (a logging failure must not fail the user's call)."""
        try:
            self.writer.submit(row_from_callback_kwargs(kwargs, status=status))
        except Exception:
            log.exception("spend sink: could not record a %s event", status)

    async def async_log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self.record(kwargs, "success")

    async def async_log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self.record(kwargs, "failure")

    def log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self.record(kwargs, "success")

    def log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self.record(kwargs, "failure")


spend_sink = SpendSink()
"""The instance named in LiteLLM's config."""

atexit.register(spend_sink.writer.close)
