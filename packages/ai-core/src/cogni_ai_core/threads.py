"""Tenant-scoped thread ids: uuid5 of `billingAccountId:stateKey` in a fixed namespace.

Isolation comes from the server-side billing account, never from anything the client sends: two
accounts using the same state key get different threads.
"""

import re
import secrets
import uuid

THREAD_NAMESPACE = uuid.UUID("f47ac10b-58cc-4372-a567-0e02b2c3d479")
STATE_KEY_MAX_LENGTH = 512
_STATE_KEY = re.compile(r"^[A-Za-z0-9._:-]+$")


class InvalidStateKey(ValueError):
    """A client-supplied state key that breaks the length or character rules."""


def validate_state_key(state_key: str) -> str:
    """Return the key if it is 1..512 chars of `[A-Za-z0-9._:-]`, else raise with the rule."""
    if not state_key or len(state_key) > STATE_KEY_MAX_LENGTH:
        raise InvalidStateKey(f"stateKey must be 1 to {STATE_KEY_MAX_LENGTH} characters")
    if not _STATE_KEY.match(state_key):
        raise InvalidStateKey("stateKey may contain only letters, digits, '.', '_', ':' and '-'")
    return state_key


def new_state_key() -> str:
    """A fresh key for a conversation the client did not name (returned as `X-State-Key`)."""
    return f"sk-{secrets.token_hex(12)}"


def derive_thread_id(billing_account_id: str, state_key: str) -> str:
    """`uuid5(NAMESPACE, f"{billingAccountId}:{stateKey}")` as a string."""
    if not billing_account_id:
        raise ValueError("billing_account_id is required to derive a thread id")
    validate_state_key(state_key)
    return str(uuid.uuid5(THREAD_NAMESPACE, f"{billing_account_id}:{state_key}"))
