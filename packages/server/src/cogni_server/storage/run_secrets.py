"""A run's per-account LiteLLM key at rest (docs/compliance.md, "Key lifecycle"): encrypted, deleted at the run's end.

The key arrives with the run's creation (header `X-Cogni-LLM-Key`) and must outlive the request: the run may
start later, on another instance, or again after a crash. So it is stored, in the run's own transaction, as
Fernet ciphertext (AES-128-CBC + HMAC-SHA256) under `COGNI_SECRETS_KEY` (several comma-separated keys: the
first encrypts, all decrypt, for rotating it), and read back only by the worker that executes the run. The
row goes with the run, and when the run ends (migration 0006's trigger).
"""

from __future__ import annotations

import uuid

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from cogni_server.storage.pool import Conn

INSERT_SECRET = "INSERT INTO run_secrets (run_id, llm_key) VALUES (%s, %s)"
SELECT_SECRET = "SELECT llm_key FROM run_secrets WHERE run_id = %s"


class SecretsKeyError(ValueError):
    """COGNI_SECRETS_KEY is not a list of Fernet keys."""


class SecretUnreadable(Exception):
    """A stored secret that the configured keys cannot decrypt (COGNI_SECRETS_KEY changed without the old key)."""


class SecretBox:
    """Encrypts and decrypts run secrets with the server's keys."""

    def __init__(self, keys: str) -> None:
        parts = [k.strip() for k in keys.split(",") if k.strip()]
        if not parts:
            raise SecretsKeyError("COGNI_SECRETS_KEY is empty")
        try:
            self._fernet = MultiFernet([Fernet(k.encode("ascii")) for k in parts])
        except (ValueError, UnicodeEncodeError) as exc:
            raise SecretsKeyError(
                "COGNI_SECRETS_KEY must be Fernet keys (32 random bytes, url-safe base64; comma-separated to rotate):"
                " make one with cryptography's Fernet.generate_key()"
            ) from exc

    def seal(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode("utf-8"))

    def open(self, ciphertext: bytes) -> str:
        try:
            return self._fernet.decrypt(bytes(ciphertext)).decode("utf-8")
        except InvalidToken:
            raise SecretUnreadable("the run's stored LLM key cannot be decrypted with COGNI_SECRETS_KEY") from None


async def store(conn: Conn, run_id: uuid.UUID | str, ciphertext: bytes) -> None:
    await conn.execute(INSERT_SECRET, (run_id, ciphertext))


async def load(conn: Conn, run_id: uuid.UUID | str) -> bytes | None:
    cur = await conn.execute(SELECT_SECRET, (run_id,))
    row = await cur.fetchone()
    return None if row is None else bytes(row["llm_key"])
