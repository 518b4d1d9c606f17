"""The request headers ``http.configurable_headers`` selects, for the run the request creates.

Set by the HTTP layer for the duration of one request (a context variable, so nothing below the
routes needs the request); read when a run's config is built (``services.runs``), where the headers
are added to ``config["configurable"]`` as the reference server does.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

_SELECTED: ContextVar[Mapping[str, str] | None] = ContextVar("cogni_configurable_headers", default=None)


@contextmanager
def selected_headers(headers: Mapping[str, str]) -> Iterator[None]:
    """Make ``headers`` the current request's configurable headers while the request is handled."""
    token = _SELECTED.set(dict(headers))
    try:
        yield
    finally:
        _SELECTED.reset(token)


def current() -> dict[str, str]:
    """The current request's configurable headers (empty outside a request or when none selected)."""
    return dict(_SELECTED.get() or {})
