"""Checks of one station-config value against its key (edge/config_schema.py), and endpoint syntax.

``check_value(key, value, base_dir)`` returns the value converted for the config dataclasses (a path
made absolute, a list made a tuple, an integer number made a float) or says what is wrong with it, in
words an operator reads next to the key path and its allowed values. Pure, except that path keys
look at the file system (a model file must exist; a folder must not be a file).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.config_schema import NAME_RE, Key, number_text


def check_value(key: Key, value: Any, base_dir: Path) -> tuple[Any, str | None]:
    """(the value converted for the dataclass, None) or (None, what is wrong) for one leaf key."""
    if value is None:
        return (None, None) if key.nullable else (None, "must not be null")
    checker = _CHECKERS[key.kind]
    return checker(key, value, base_dir)


def _check_name(key: Key, value: Any, base_dir: Path) -> tuple[Any, str | None]:
    if isinstance(value, int) and not isinstance(value, bool):  # station: 7 is read as a number
        value = str(value)
    if not isinstance(value, str):
        return None, f"must be a name, got {_describe(value)}"
    if not NAME_RE.fullmatch(value):
        return None, f"{value!r} is not a valid name"
    return value, None


def _check_int(key: Key, value: Any, base_dir: Path) -> tuple[Any, str | None]:
    if isinstance(value, bool) or not isinstance(value, int):
        return None, f"must be a whole number, got {_describe(value)}"
    return _check_range(key, value)


_EXPONENT_RE = re.compile(r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+")


def _check_float(key: Key, value: Any, base_dir: Path) -> tuple[Any, str | None]:
    if isinstance(value, str) and _EXPONENT_RE.fullmatch(value.strip()):
        value = float(value)  # YAML 1.1 reads 1e-3 (no dot) as text
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None, f"must be a number, got {_describe(value)}"
    if not math.isfinite(value):
        return None, f"must be a finite number, got {value}"
    return _check_range(key, float(value))


def _check_range(key: Key, value: float) -> tuple[Any, str | None]:
    below = key.low is not None and (value <= key.low if key.low_exclusive else value < key.low)
    above = key.high is not None and value > key.high
    if below or above:
        return None, f"{number_text(value)} is out of range"
    return value, None


def _check_bool(key: Key, value: Any, base_dir: Path) -> tuple[Any, str | None]:
    if not isinstance(value, bool):
        return None, f"must be true or false, got {_describe(value)}"
    return value, None


def _check_choice(key: Key, value: Any, base_dir: Path) -> tuple[Any, str | None]:
    if not isinstance(value, str):
        return None, f"must be one of the allowed names, got {_describe(value)}"
    if value in key.not_built:
        return None, f"{value} is not built yet; use {' or '.join(key.choices)}"
    if value not in key.choices:
        same = [choice for choice in key.choices if choice.lower() == value.lower()]
        hint = f"; did you mean {same[0]!r}?" if same else ""
        return None, f"{value!r} is not allowed{hint}"
    return value, None


def _check_path(key: Key, value: Any, base_dir: Path) -> tuple[Any, str | None]:
    if not isinstance(value, str) or not value.strip():
        return None, f"must be a path, got {_describe(value)}"
    path = resolve_path(value, base_dir)
    if key.path_is == "file" and not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        return None, f"{path} {what}"
    if key.path_is == "folder" and path.exists() and not path.is_dir():
        return None, f"{path} exists and is not a folder"
    return path, None


def _check_paths(key: Key, value: Any, base_dir: Path) -> tuple[Any, str | None]:
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        return None, f"must be a list of paths, got {_describe(value)}"
    paths = tuple(resolve_path(item, base_dir) for item in value)
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        return None, f"{', '.join(missing)} {'does' if len(missing) == 1 else 'do'} not exist"
    return paths, None


def _check_text(key: Key, value: Any, base_dir: Path) -> tuple[Any, str | None]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return None, (
            f"must be text in quotes, got the number {value!r} (YAML reads bare digits as a number: "
            "0042 becomes 34); write e.g. '0042'"
        )
    if not isinstance(value, str) or not value.strip():
        return None, f"must be text, got {_describe(value)}"
    return value, None


def resolve_path(text: str, base_dir: Path) -> Path:
    """``text`` (``~`` expanded) relative to ``base_dir``, made absolute and normalised."""
    return Path(os.path.normpath((base_dir / Path(text).expanduser()).absolute()))


def _check_endpoint(key: Key, value: Any, base_dir: Path) -> tuple[Any, str | None]:
    if not isinstance(value, str):
        return None, f"must be an endpoint, got {_describe(value)}"
    if parse_endpoint(value) is None:
        return None, f"{value!r} is not a valid endpoint"
    return value, None


_TCP_RE = re.compile(r"tcp://(\*|\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9_.-]*):(\*|[0-9]{1,5})")


@dataclass(frozen=True)
class Endpoint:
    """A parsed ZeroMQ endpoint: transport, host (tcp) or address, port (tcp; None for *)."""

    transport: str  # tcp | ipc | inproc
    address: str  # tcp: the host; ipc: the path; inproc: the name
    port: int | None = None

    def is_local(self) -> bool:
        if self.transport != "tcp":
            return True
        host = self.address.strip("[]").lower()
        return host in ("localhost", "::1") or host.startswith("127.")


def parse_endpoint(text: str) -> Endpoint | None:
    """An endpoint the station can bind, or None when ``text`` is not one (pure)."""
    match = _TCP_RE.fullmatch(text)
    if match:
        host, port = match.groups()
        if port == "*":
            return Endpoint("tcp", host, None)
        return Endpoint("tcp", host, int(port)) if 1 <= int(port) <= 65535 else None
    for transport in ("ipc", "inproc"):
        prefix = f"{transport}://"
        if text.startswith(prefix) and text[len(prefix) :].strip():
            return Endpoint(transport, text[len(prefix) :])
    return None


def _check_providers(key: Key, value: Any, base_dir: Path) -> tuple[Any, str | None]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return None, f"must be a list of provider names, got {_describe(value)}"
    if not value:
        return None, "must not be empty"
    from edge.model.session import SHORT_NAMES

    full_names = []
    for name in value:
        if name != "auto" and name.lower() not in SHORT_NAMES and not name.endswith("ExecutionProvider"):
            return None, f"unknown provider {name!r}"
        full_names.append(SHORT_NAMES.get(name.lower(), name))
    if "auto" in value and len(value) > 1:
        return None, "auto cannot be combined with other providers"
    if len(set(full_names)) != len(full_names):
        return None, f"{value} names a provider twice"
    return tuple(value), None


_CHECKERS = {
    "name": _check_name,
    "int": _check_int,
    "float": _check_float,
    "bool": _check_bool,
    "choice": _check_choice,
    "path": _check_path,
    "endpoint": _check_endpoint,
    "providers": _check_providers,
    "text": _check_text,
    "paths": _check_paths,
}


def _describe(value: Any) -> str:
    kind = {bool: "boolean", int: "integer", float: "number", str: "text", list: "list", dict: "mapping"}
    return f"{kind.get(type(value), type(value).__name__)} {value!r}"
