import uuid

import pytest

from cogni_ai_core import THREAD_NAMESPACE, InvalidStateKey, derive_thread_id, new_state_key, validate_state_key


def test_thread_id_is_pinned_uuid5_of_account_and_state_key() -> None:
    assert str(THREAD_NAMESPACE) == "f47ac10b-58cc-4372-a567-0e02b2c3d479"
    # Known vector: same inputs always give this id (it addresses stored conversations).
    assert derive_thread_id("acct-1", "chat-1") == "d5ba0cb3-bb0d-5a66-b00d-a07cbc4896ec"
    assert derive_thread_id("acct-1", "chat-1") == derive_thread_id("acct-1", "chat-1")
    assert uuid.UUID(derive_thread_id("acct-1", "chat-1")).version == 5


def test_another_tenant_with_the_same_state_key_gets_another_thread() -> None:
    assert derive_thread_id("acct-1", "chat-1") != derive_thread_id("acct-2", "chat-1")


@pytest.mark.parametrize("bad", ["", "a" * 513, "has space", "slash/no", "ünïcode"])
def test_bad_state_keys_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidStateKey):
        validate_state_key(bad)


def test_limits_and_generated_keys_are_valid() -> None:
    assert validate_state_key("a" * 512) == "a" * 512
    assert validate_state_key("A.b_c:d-1") == "A.b_c:d-1"
    key = new_state_key()
    assert validate_state_key(key) == key
    assert new_state_key() != key
