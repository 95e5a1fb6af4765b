"""Strict reading of a parsed YAML mapping: every key typed, a missing or unknown key refused.

``Fields(data)`` wraps one mapping; each getter records the key it read, and ``done()`` refuses any
key left over (naming the allowed ones). A problem is a ``FieldError`` with the key's dotted path;
the caller turns it into its own error naming the file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

MISSING: Any = object()  # default of a required key


class FieldError(Exception):
    """One key of a YAML mapping is missing, unknown or of the wrong type."""

    def __init__(self, key_path: str, problem: str) -> None:
        super().__init__(f"{key_path}: {problem}")
        self.key_path = key_path
        self.problem = problem


class Fields:
    """One mapping read key by key; ``where`` is its dotted path in the document ("" at the top)."""

    def __init__(self, data: Any, where: str = "") -> None:
        if not isinstance(data, Mapping):
            got = "nothing" if data is None else f"a {type(data).__name__}"
            raise FieldError(where or "(file)", f"must be a mapping of keys, got {got}")
        self._data = data
        self._where = where
        self._read: list[str] = []

    def path(self, key: str) -> str:
        return f"{self._where}.{key}" if self._where else key

    def raw(self, key: str, default: Any = MISSING) -> Any:
        self._read.append(key)
        if key in self._data:
            return self._data[key]
        if default is MISSING:
            raise FieldError(self.path(key), "is missing")
        return default

    def number(self, key: str, default: Any = MISSING, *, nullable: bool = False) -> Any:
        """A finite int or float (bool refused), as a float; None when ``nullable`` and null."""
        value = self.raw(key, default)
        if value is None and nullable:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise FieldError(self.path(key), f"must be a finite number, got {value!r}")
        return float(value)

    def integer(self, key: str, default: Any = MISSING, *, minimum: int = 0) -> int:
        value = self.raw(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise FieldError(self.path(key), f"must be a whole number, got {value!r}")
        if value < minimum:
            raise FieldError(self.path(key), f"must be at least {minimum}, got {value}")
        return value

    def text(self, key: str, default: Any = MISSING) -> str:
        value = self.raw(key, default)
        if not isinstance(value, str):
            raise FieldError(self.path(key), f"must be text, got {value!r}")
        return value

    def choice(self, key: str, allowed: tuple[str, ...]) -> str:
        value = self.raw(key)
        if value not in allowed:
            raise FieldError(self.path(key), f"must be one of {', '.join(allowed)}, got {value!r}")
        return value

    def dims(self, key: str, count: int) -> tuple[int, ...]:
        """An array shape: a list of ``count`` whole numbers above 0."""
        value = self.raw(key)
        if not (
            isinstance(value, list) and len(value) == count and all(type(n) is int and n > 0 for n in value)
        ):
            raise FieldError(
                self.path(key), f"must be a list of {count} whole numbers above 0, got {value!r}"
            )
        return tuple(value)

    def mapping(self, key: str) -> Fields:
        """A required mapping."""
        return Fields(self.raw(key), self.path(key))

    def nullable_mapping(self, key: str) -> Fields | None:
        """A required key: a mapping, or null."""
        value = self.raw(key)
        return None if value is None else Fields(value, self.path(key))

    def free_mapping(self, key: str) -> dict[str, Any]:
        """A mapping with any text keys, returned as it is."""
        value = self.raw(key)
        if not isinstance(value, Mapping):
            raise FieldError(self.path(key), f"must be a mapping, got {value!r}")
        for name in value:
            if not isinstance(name, str):
                raise FieldError(f"{self.path(key)}.{name}", "must be a text key")
        return dict(value)

    def records(self, key: str, default: Any = MISSING) -> list[Fields]:
        """A list of mappings, each wrapped."""
        value = self.raw(key, default)
        if not isinstance(value, list):
            raise FieldError(self.path(key), f"must be a list, got {value!r}")
        return [Fields(item, f"{self.path(key)}[{index}]") for index, item in enumerate(value)]

    def done(self) -> None:
        """Refuse any key that no getter read."""
        unknown = [key for key in self._data if key not in self._read]
        if unknown:
            allowed = ", ".join(self._read)
            raise FieldError(self.path(str(unknown[0])), f"is not a known key (allowed here: {allowed})")


def plain(value: Any, where: str) -> Any:
    """``value`` as plain YAML values (numpy scalars unwrapped, tuples as lists), else a FieldError."""
    if hasattr(value, "item") and getattr(value, "shape", None) == ():  # a numpy scalar
        value = value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(key): plain(item, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item, f"{where}[{index}]") for index, item in enumerate(value)]
    raise FieldError(
        where, f"holds a {type(value).__name__}; only numbers, text, lists and mappings are stored"
    )
