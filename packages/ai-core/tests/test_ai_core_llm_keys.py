"""The per-account LiteLLM key's form: the account it names, read back without any secret."""

from cogni_ai_core import LLM_KEY_CONFIGURABLE, compose_llm_key, llm_key_account, normalize_error
from cogni_ai_core.errors import AiExecutionError


def test_a_key_names_its_account() -> None:
    for account in ("acct-1", "3f1c2d9e-0000-4000-8000-000000000001", "ü-ñ"):
        key = compose_llm_key(account, "secret")
        assert key.startswith("sk-cogni-") and llm_key_account(key) == account


def test_other_keys_name_no_account() -> None:
    for key in ("sk-1234", "sk-cogni-", "sk-cogni-YWJj", "sk-cogni-.x", "sk-cogni-@@.x", "bearer x"):
        assert llm_key_account(key) is None


def test_the_configurable_key_is_kept_out_of_metadata_by_its_prefix() -> None:
    assert LLM_KEY_CONFIGURABLE.startswith("__")


def test_a_rejected_key_keeps_its_code() -> None:
    assert normalize_error(AiExecutionError("llm_key_rejected", "revoked")) == "llm_key_rejected"
