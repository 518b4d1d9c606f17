"""Scripting directives embedded in the last user message: `[mock:key=value]` or `[mock:flag]`.

They let a test or benchmark script the upstream's behaviour (errors, hangs, delays, long outputs)
through an ordinary chat request, so the same script works through LiteLLM unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

DIRECTIVE_RE = re.compile(r"\[mock:([a-z_]+)(?:=([^\]]*))?\]")

N = TypeVar("N", int, float)

KNOWN = ("status", "hang", "hang_after", "delay_ms", "tokens", "reply")


class DirectiveError(ValueError):
    """A directive that is unknown or carries a bad value (answered with HTTP 400)."""


@dataclass(frozen=True)
class Directives:
    """What the prompt asked the mock to do, with the directive text removed from the prompt."""

    text: str
    status: int | None = None
    hang_seconds: float | None = None
    hang_after_tokens: int | None = None
    delay_ms: float | None = None
    tokens: int | None = None
    reply: str | None = None


def _number(name: str, value: str | None, low: N, high: N, kind: Callable[[str], N], wants: str) -> N:
    try:
        number = kind(value or "")
    except ValueError:
        raise DirectiveError(f"[mock:{name}=...] needs {wants}, got {value!r}") from None
    if not low <= number <= high:
        raise DirectiveError(f"[mock:{name}={number}] must be between {low} and {high}")
    return number


def _int(name: str, value: str | None, low: int, high: int) -> int:
    return _number(name, value, low, high, int, "an integer")


def _float(name: str, value: str | None, low: float, high: float) -> float:
    return _number(name, value, low, high, float, "a number")


def parse_directives(message: str, *, hang_seconds: float, max_tokens: int) -> Directives:
    """Extract directives from `message`; the remaining text has its whitespace collapsed."""
    if "[mock:" not in message:
        return Directives(text=" ".join(message.split()))
    values: dict[str, object] = {}
    for match in DIRECTIVE_RE.finditer(message):
        name, raw = match.group(1), match.group(2)
        if name == "status":
            values["status"] = _int(name, raw, 400, 599)
        elif name == "hang":
            values["hang_seconds"] = hang_seconds if raw is None else min(_float(name, raw, 0, 3600), hang_seconds)
        elif name == "hang_after":
            values["hang_after_tokens"] = _int(name, raw, 0, max_tokens)
        elif name == "delay_ms":
            values["delay_ms"] = _float(name, raw, 0, 10_000)
        elif name == "tokens":
            values["tokens"] = _int(name, raw, 1, max_tokens)
        elif name == "reply":
            values["reply"] = raw or ""
        else:
            raise DirectiveError(f"unknown mock directive [mock:{name}]; known: {', '.join(KNOWN)}")
    if "hang_after_tokens" in values:  # `[mock:hang_after=N]` stalls for the default hang time
        values.setdefault("hang_seconds", hang_seconds)
    text = " ".join(DIRECTIVE_RE.sub(" ", message).split())
    return Directives(text=text, **values)  # type: ignore[arg-type]
