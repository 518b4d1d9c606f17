"""Make ``typing.TypedDict`` state types usable by pydantic on Python 3.11.

pydantic refuses ``typing.TypedDict`` before Python 3.12 (it needs ``typing_extensions.TypedDict``),
yet many LangGraph projects, ours included, declare state with ``typing.TypedDict``. For JSON Schema
generation only, such types are rebuilt as equivalent ``typing_extensions.TypedDict`` classes (same
name, fields, required keys and metadata), recursing into generic arguments. The graph itself is
never changed.
"""

from __future__ import annotations

import functools
import types
import typing
from typing import Any, NotRequired, Required, get_args, get_origin

import typing_extensions
from typing_extensions import is_typeddict

_WRAPPERS = {Required, NotRequired, typing.Required, typing.NotRequired}


def _is_stdlib_typeddict(tp: Any) -> bool:
    return is_typeddict(tp) and not isinstance(tp, typing_extensions._TypedDictMeta)  # type: ignore[attr-defined]


def needs_compat(tp: Any) -> bool:
    """True when ``tp`` (or a type nested in it) is a stdlib TypedDict pydantic would reject."""
    try:
        return _convert(tp) is not tp
    except Exception:
        return False


def compat_type(tp: Any) -> Any:
    """``tp`` with every stdlib TypedDict replaced by a typing_extensions twin (best effort)."""
    try:
        return _convert(tp)
    except Exception:
        return tp


@functools.lru_cache(maxsize=256)
def _convert_typeddict(tp: type) -> Any:
    hints = typing.get_type_hints(tp, include_extras=True)
    required = getattr(tp, "__required_keys__", frozenset(hints))
    fields: dict[str, Any] = {}
    for key, hint in hints.items():
        if get_origin(hint) in _WRAPPERS:
            hint = get_args(hint)[0]
        inner = _convert(hint)
        fields[key] = Required[inner] if key in required else NotRequired[inner]
    twin = typing_extensions.TypedDict(tp.__name__, fields)  # type: ignore[misc]
    twin.__module__ = tp.__module__
    twin.__doc__ = tp.__doc__
    return twin


def _convert(tp: Any) -> Any:
    if isinstance(tp, type) and _is_stdlib_typeddict(tp):
        return _convert_typeddict(tp)
    origin, args = get_origin(tp), get_args(tp)
    if origin is None or not args:
        return tp
    if origin is typing.Annotated:
        base = _convert(args[0])
        return tp if base is args[0] else typing.Annotated[(base, *tp.__metadata__)]
    if origin is typing.Literal:
        return tp
    converted = tuple(_convert(a) if not isinstance(a, list) else a for a in args)
    if all(c is a for c, a in zip(converted, args, strict=True)):
        return tp
    if origin is typing.Union or origin is types.UnionType:
        return typing.Union[converted]  # noqa: UP007 (rebuilding a runtime Union)
    if origin in _WRAPPERS:
        return origin[converted[0]]
    try:
        return origin[converted if len(converted) > 1 else converted[0]]
    except TypeError:
        return tp
