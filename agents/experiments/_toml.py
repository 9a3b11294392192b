"""A scenario's table written back as TOML text, so a sweep's run reads its file the way
``specledger simulate`` does (the standard library reads TOML but writes none).

Every value goes on one line (inline tables and arrays), keys in their given order,
so the same table always gives the same text.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from ..errors import ExperimentError

__all__ = ["dumps"]

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: str) -> str:
    return key if _BARE.match(key) else json.dumps(key)


def _value(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):  # TOML has inf and nan, but no scenario field takes them
            raise ExperimentError(f"{where}: expected a finite number, got {value!r}")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_value(v, f"{where}.{i}") for i, v in enumerate(value)) + "]"
    if isinstance(value, dict):
        items = (f"{_key(k)} = {_value(v, f'{where}.{k}')}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    raise ExperimentError(
        f"{where}: expected a number, string, boolean, array or table, got {type(value).__name__}"
    )


def dumps(table: dict[str, Any]) -> str:
    """``table`` as TOML: one ``key = value`` line per top-level key."""
    return "".join(f"{_key(k)} = {_value(v, k)}\n" for k, v in table.items())
