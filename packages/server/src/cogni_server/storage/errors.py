"""Storage-level outcomes the API turns into status codes (404, 409)."""

from __future__ import annotations


class NotFound(LookupError):
    """The row does not exist or belongs to another tenant (both answer 404)."""


class Conflict(RuntimeError):
    """The write conflicts with existing state (answers 409)."""


class Forbidden(PermissionError):
    """The caller may see the row but not change it (system assistants)."""
