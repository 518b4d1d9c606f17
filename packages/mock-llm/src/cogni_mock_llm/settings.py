"""Process-wide knobs of the mock upstream (set from the CLI or by tests)."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_MODELS: tuple[str, ...] = ("gpt-4o-mini", "mock-free", "mock-chat")


@dataclass(frozen=True)
class MockSettings:
    """How the mock behaves when a prompt does not say otherwise.

    `token_delay_ms` is the default pause between streamed tokens (and, for non-streaming answers,
    per generated token before the answer is sent). `hang_seconds` bounds `[mock:hang]` so a test
    that forgets a client timeout still ends. `max_tokens_directive` caps `[mock:tokens=N]`.
    """

    token_delay_ms: float = 0.0
    hang_seconds: float = 30.0
    max_tokens_directive: int = 200_000
    models: tuple[str, ...] = field(default=DEFAULT_MODELS)
