"""Domain errors: what a service says went wrong, independent of any transport.

``api/errors.py`` maps each to an HTTP status and the clients' ``{"detail": ...}`` body in one place;
the thread-streaming commands map them to protocol error codes; the CLI prints them.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a service raises on purpose; the message is shown to the caller."""


class NotFound(DomainError, LookupError):
    """The thing does not exist or belongs to another tenant (both answer 404, never 403)."""


class Conflict(DomainError):
    """The request conflicts with the current state (a busy thread, an existing id): 409."""


class Forbidden(DomainError, PermissionError):
    """The caller may see the thing but not change it (system assistants): 403."""


class Invalid(DomainError, ValueError):
    """The request is well-formed JSON but says something impossible (bad id, bad value): 422."""


class Unsupported(Invalid):
    """A field or feature this server knows but does not implement: 422 naming it, never dropped."""


class UpstreamFailed(DomainError):
    """A service the request needs (the embedding model behind LiteLLM) failed: 502."""
