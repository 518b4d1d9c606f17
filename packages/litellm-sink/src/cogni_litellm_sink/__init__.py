"""A LiteLLM callback that writes one spend-log row per call into Postgres, plus proxy tooling."""

from cogni_litellm_sink.mapping import SpendRow, row_from_callback_kwargs, row_from_standard_logging_object
from cogni_litellm_sink.schema import COLUMNS, DDL, TABLE
from cogni_litellm_sink.writer import DATABASE_URL_ENV, SpendLogWriter

__all__ = [
    "COLUMNS",
    "DATABASE_URL_ENV",
    "DDL",
    "TABLE",
    "SpendLogWriter",
    "SpendRow",
    "row_from_callback_kwargs",
    "row_from_standard_logging_object",
]
