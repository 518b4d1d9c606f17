"""``extract`` on ``POST /threads/search``: ``{"alias": "values.messages[-1].content", ...}`` adds
``"extracted": {"alias": <value or null>}`` to each thread of the page.

Paths start at ``values``, ``metadata``, ``config`` or ``interrupts`` and continue with ``.key`` and
``[index]`` steps (negative indices count from the end); at most 10 per request. A path that does
not resolve gives null. Pages are at most 1000 threads, so the walk is done here, not in SQL.
"""

from __future__ import annotations

import re
from typing import Any

from cogni_server.errors import Invalid

ROOTS = ("config", "interrupts", "metadata", "values")
MAX_PATHS = 10
_STEP = r"(?:\.[^.\[\]]+|\[-?\d+\])"
_PATH = re.compile(rf"^(?P<root>[^.\[\]]+)(?P<rest>{_STEP}*)$")
_TOKENS = re.compile(r"\.([^.\[\]]+)|\[(-?\d+)\]")


def check_extract(extract: dict[str, Any] | None) -> dict[str, list[str | int]]:
    """The parsed paths, or a 422 naming the bad one."""
    if not extract:
        return {}
    if len(extract) > MAX_PATHS:
        raise Invalid(f"extract has {len(extract)} paths; at most {MAX_PATHS} are allowed")
    parsed: dict[str, list[str | int]] = {}
    for alias, path in extract.items():
        if not isinstance(path, str):
            raise Invalid(f"extract path of {alias!r} must be a string, got {path!r}")
        root = re.split(r"[.\[]", path, maxsplit=1)[0]
        if root not in ROOTS:
            raise Invalid(f"Extract path {path!r} must start with one of: {', '.join(ROOTS)}")
        match = _PATH.match(path)
        if match is None:
            raise Invalid(f"extract path {path!r} is malformed: use root.key[index].key")
        steps: list[str | int] = [root]
        for key, index in _TOKENS.findall(match["rest"]):
            steps.append(int(index) if index else key)
        parsed[alias] = steps
    return parsed


def _walk(value: Any, steps: list[str | int]) -> Any:
    for step in steps:
        if isinstance(step, int):
            if not isinstance(value, list) or not -len(value) <= step < len(value):
                return None
            value = value[step]
        elif isinstance(value, dict):
            value = value.get(step)
        else:
            return None
    return value


def extracted(thread: dict[str, Any], paths: dict[str, list[str | int]]) -> dict[str, Any]:
    return {alias: _walk(thread.get(str(steps[0])), steps[1:]) for alias, steps in paths.items()}
