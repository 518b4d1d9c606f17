"""The deterministic reply rule: what the mock answers to a chat request.

Everything here is a pure function of the request body, so tests can assert exact text, ids and
token counts. See docs/mock-llm.md for the rule in prose.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

from cogni_mock_llm.directives import Directives, parse_directives
from cogni_mock_llm.settings import MockSettings

VOCAB = (
    "lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit",
    "sed", "do", "eiusmod", "tempor", "incididunt", "ut", "labore", "et",
)  # fmt: skip
TRIGGER_RE = re.compile(r"\bcall\s+([A-Za-z0-9_.\-]+)")
_JSON = json.JSONDecoder()


class RequestError(ValueError):
    """The request body is not something the mock can answer (HTTP 400, OpenAI error shape)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Plan:
    """The answer to one request, decided before anything is sent."""

    model: str
    stream: bool
    include_usage: bool
    directives: Directives
    prompt_tokens: int
    text: str | None = None
    tool_calls: tuple[ToolCall, ...] = field(default_factory=tuple)

    @property
    def completion_tokens(self) -> int:
        if self.tool_calls:
            return sum(1 + len(call.arguments.split()) for call in self.tool_calls)
        return len((self.text or "").split())

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_calls else "stop"


def message_text(message: dict[str, Any]) -> str:
    """The text of a message: a string content, or the text parts of a list content."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict) and "text" in part)
    return ""


def lorem(count: int) -> str:
    """`count` whitespace tokens of filler text (for long-output benchmarks)."""
    return " ".join(VOCAB[i % len(VOCAB)] for i in range(count))


def _tool_names(body: dict[str, Any]) -> list[str]:
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise RequestError("'tools' must be a list", "tools")
    names = []
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise RequestError("every tool needs function.name", "tools")
        names.append(function["name"])
    return names


def _call_id(messages: list[Any], index: int, name: str) -> str:
    seed = json.dumps(messages, sort_keys=True, default=str) + f"|{index}|{name}"
    return "call_" + hashlib.sha256(seed.encode()).hexdigest()[:24]


def _triggered_calls(text: str, offered: list[str], messages: list[Any]) -> list[ToolCall]:
    """Every `call <name> [json-object]` in the prompt whose name is an offered tool."""
    calls: list[ToolCall] = []
    for match in TRIGGER_RE.finditer(text):
        name = match.group(1)
        if name not in offered:
            continue
        rest = text[match.end() :].lstrip()
        args: Any = {}
        if rest.startswith("{"):
            try:
                args, _ = _JSON.raw_decode(rest)
            except json.JSONDecodeError as exc:
                raise RequestError(f"arguments after 'call {name}' are not valid JSON: {exc}") from None
        calls.append(ToolCall(_call_id(messages, len(calls), name), name, json.dumps(args)))
    return calls


def _forced_tool(tool_choice: Any, offered: list[str]) -> str | None:
    """The tool `tool_choice` forces (`required` picks the first offered), if any."""
    if tool_choice == "required" and offered:
        return offered[0]
    if isinstance(tool_choice, dict):
        name = (tool_choice.get("function") or {}).get("name")
        if name not in offered:
            raise RequestError(f"tool_choice names {name!r}, which is not among the offered tools")
        return str(name)
    return None


def _tool_result_reply(messages: list[Any]) -> str:
    """Quote the trailing tool results, naming each tool via its call id."""
    names: dict[str, str] = {}
    for message in messages:
        for call in message.get("tool_calls") or []:
            names[str(call.get("id"))] = str((call.get("function") or {}).get("name", "unknown"))
    results = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        name = names.get(str(message.get("tool_call_id")), "unknown")
        results.append(f"The tool {name} returned: {message_text(message)}")
    return " ".join(reversed(results))


def _validated_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("'messages' must be a non-empty list", "messages")
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise RequestError("every message must be an object with a 'role'", "messages")
    return messages


def plan_reply(body: Any, settings: MockSettings) -> Plan:
    """Decide the whole answer to a chat completion request body."""
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    messages = _validated_messages(body)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("'model' is required", "model")
    if body.get("n") not in (None, 1):
        raise RequestError("the mock supports only n=1", "n")
    stream = bool(body.get("stream"))
    include_usage = stream and bool((body.get("stream_options") or {}).get("include_usage"))

    last_user = next((m for m in reversed(messages) if m["role"] == "user"), None)
    directives = parse_directives(
        message_text(last_user) if last_user else "",
        hang_seconds=settings.hang_seconds,
        max_tokens=settings.max_tokens_directive,
    )
    base = Plan(
        model=model,
        stream=stream,
        include_usage=include_usage,
        directives=directives,
        prompt_tokens=sum(len(message_text(m).split()) for m in messages),
    )

    if messages[-1]["role"] == "tool":
        return replace(base, text=_tool_result_reply(messages))
    offered = _tool_names(body)
    tool_choice = body.get("tool_choice", "auto")
    if offered and tool_choice != "none":
        calls = _triggered_calls(directives.text, offered, messages)
        forced = _forced_tool(tool_choice, offered)
        if forced and not any(call.name == forced for call in calls):
            calls = [ToolCall(_call_id(messages, 0, forced), forced, "{}")]
        if calls:
            return replace(base, tool_calls=tuple(calls))
    if directives.reply is not None:
        text = directives.reply
    elif directives.tokens is not None:
        text = lorem(directives.tokens)
    else:
        text = f"You said: {directives.text}"
    return replace(base, text=text)
