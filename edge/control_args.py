"""Arguments of control requests: each read, checked and refused with a fix (pure).

A request is the JSON object a client sent (``{"cmd": "product", "name": "cookie"}``). Every reader
raises ``RequestError`` naming the command, the argument and what it must be, so the reply tells
the operator exactly what to change. ``check_keys`` refuses an argument the command does not know
(a typo must not pass silently, e.g. ``"to_verison"``).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

from edge.errors import InpEdgeError

MISSING = object()


class RequestError(InpEdgeError):
    """A request's argument is missing or wrong (the reply says which and how to fix it)."""


def command(request: Mapping[str, Any]) -> str:
    return str(request.get("cmd"))


def check_keys(request: Mapping[str, Any], allowed: Collection[str]) -> None:
    unknown = sorted(str(key) for key in request if key != "cmd" and key not in allowed)
    if unknown:
        known = ", ".join(sorted(allowed)) or "none"
        raise RequestError(
            f"{command(request)}: unknown argument(s) {', '.join(unknown)}",
            fix=f"{command(request)} takes: {known}",
        )


def text_arg(
    request: Mapping[str, Any], name: str, *, choices: Collection[str] = (), default: Any = MISSING
) -> Any:
    """A string argument (one of ``choices`` when given); ``default`` when absent (else required)."""
    value = request.get(name, MISSING)
    if value is MISSING or (value is None and default is not MISSING):
        if default is MISSING:
            hint = f'"{name}": "{next(iter(choices))}"' if choices else f'"{name}": "..."'
            raise RequestError(f"{command(request)}: argument {name!r} is missing", fix=f"add {hint}")
        return default
    if not isinstance(value, str) or (choices and value not in choices):
        wanted = f"one of {', '.join(choices)}" if choices else "a string"
        raise RequestError(f"{command(request)}: argument {name!r} is {value!r}", fix=f"give {wanted}")
    return value


def whole_arg(
    request: Mapping[str, Any], name: str, *, minimum: int, maximum: int | None = None, default: Any = MISSING
) -> Any:
    """A whole-number argument in [minimum, maximum]; ``default`` when absent or null (else required)."""
    value = request.get(name, MISSING)
    if value is MISSING or value is None:
        if default is MISSING:
            raise RequestError(f"{command(request)}: argument {name!r} is missing", fix=f'add "{name}": N')
        return default
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    if not ok or (maximum is not None and value > maximum):
        bound = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"
        raise RequestError(
            f"{command(request)}: argument {name!r} is {value!r}", fix=f"give a whole number {bound}"
        )
    return value


def number_arg(
    request: Mapping[str, Any], name: str, *, low: float, high: float, default: Any = MISSING
) -> Any:
    """A finite number in [low, high]; ``default`` when absent or null (else required)."""
    value = request.get(name, MISSING)
    if value is MISSING or value is None:
        if default is MISSING:
            raise RequestError(f"{command(request)}: argument {name!r} is missing", fix=f'add "{name}": X')
        return default
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not low <= value <= high:
        raise RequestError(
            f"{command(request)}: argument {name!r} is {value!r}",
            fix=f"give a number from {low:g} to {high:g}",
        )
    return float(value)


def bool_arg(request: Mapping[str, Any], name: str, *, default: bool) -> bool:
    value = request.get(name, default)
    if not isinstance(value, bool):
        raise RequestError(f"{command(request)}: argument {name!r} is {value!r}", fix="give true or false")
    return value
