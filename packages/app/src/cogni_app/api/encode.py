"""Database rows -> camelCase JSON (Decimals as strings so no cost is rounded on the way out)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from pydantic.alias_generators import to_camel


def jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {to_camel(str(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    return value
