"""Camera profiles (contract 3): one YAML per camera model, the GenICam node writes that set it up.

A profile is an ordered list of node writes with SFNC node names (PixelFormat, Width, ExposureTime,
Gain, ...), applied one by one when the camera opens and each read back (``verify: false`` skips
the read-back of one node: a camera that rounds, or a simulator that keeps its own value). How the
camera is triggered belongs to the station (``source.genicam.trigger``), so Trigger* nodes are
refused here. ``check_profile_file`` collects every issue with its key path (``nodes[2].value``)
and line, like the station config; ``inp-edge check-config PROFILE.yaml`` prints them. Pure except
for reading the file; the camera side is in ``edge/camera/genicam_nodes.py``. Reference:
docs/cameras.md.

::

    profile: 1                     # schema version (and how check-config tells a profile file)
    camera: {vendor: Basler, model: acA1920-40uc}
    tried_on_hardware: false       # true once applied to a real camera (or the named simulator)
    producer: ...                  # optional: the GenTL producer it was tried with
    description: ...               # optional
    nodes:
      - {node: PixelFormat, value: BayerRG8}
      - {node: ExposureTime, value: 5000.0, note: "µs; short enough for the line speed"}
      - {node: Gain, value: 0.0, verify: false}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.camera.pixel_format import SUPPORTED
from edge.config_checks import ConfigIssue, issues_error, unknown_key
from edge.config_schema import REQUIRED, TYPE_NAMES, Key, allowed_text
from edge.config_values import check_value
from edge.config_yaml import FILE, parse_yaml, read_yaml_text, with_line

PROFILE_SCHEMA = 1
PROFILE_KEY = "profile"  # a YAML mapping with this top-level key is a profile, not a station config
NODE_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,127}")
TRIGGER_NODE_RE = re.compile(r"Trigger[A-Za-z]*")
TOP_KEYS = ("profile", "camera", "tried_on_hardware", "producer", "description", "nodes")
CAMERA_KEYS = ("vendor", "model")
NODE_KEYS = ("node", "value", "verify", "note")
NodeValue = str | int | float | bool


@dataclass(frozen=True)
class NodeWrite:
    """One node write: ``node`` = ``value``, read back afterwards unless ``verify`` is false."""

    node: str
    value: NodeValue
    verify: bool = True
    note: str = ""


@dataclass(frozen=True)
class CameraProfile:
    vendor: str
    model: str
    tried_on_hardware: bool
    nodes: tuple[NodeWrite, ...]
    producer: str = ""
    description: str = ""
    path: Path | None = None

    @property
    def name(self) -> str:
        return str(self.path) if self.path else f"profile for {self.vendor} {self.model}"


def is_profile_document(data: Any) -> bool:
    """Whether parsed YAML is a camera profile (it has the top-level ``profile`` key)."""
    return isinstance(data, Mapping) and PROFILE_KEY in data


def check_profile_file(path: str | Path) -> tuple[CameraProfile | None, list[ConfigIssue]]:
    """(the profile, []) when ``path`` is a valid camera profile, else (None, every issue found)."""
    path = Path(path)
    text, issues = read_yaml_text(path)
    return (None, issues) if text is None else check_profile_text(text, path)


def check_profile_text(text: str, path: Path | None = None) -> tuple[CameraProfile | None, list[ConfigIssue]]:
    data, lines, issues = parse_yaml(text)
    if any(issue.key_path == FILE for issue in issues):
        return None, issues
    profile, found = check_profile_data(data, path)
    issues = issues + [with_line(issue, lines) for issue in found]
    issues.sort(key=lambda issue: (issue.line is None, issue.line or 0))
    return (profile if not issues else None), issues


def load_profile(path: str | Path) -> CameraProfile:
    """The profile at ``path``; a ``ConfigError`` listing every issue when it is not valid."""
    profile, issues = check_profile_file(path)
    if profile is None:
        raise issues_error("camera profile", path, issues, "docs/cameras.md")
    return profile


def check_profile_data(data: Any, path: Path | None = None) -> tuple[CameraProfile | None, list[ConfigIssue]]:
    """Check a parsed profile; every issue names its key path (``nodes[1].value``)."""
    if not isinstance(data, Mapping):
        return None, [ConfigIssue(FILE, "must be a mapping of keys", "profile: 1, camera: ..., nodes: [...]")]
    issues = _unknown_keys("", data, TOP_KEYS)
    if data.get(PROFILE_KEY) != PROFILE_SCHEMA:
        issues.append(ConfigIssue(PROFILE_KEY, f"schema {data.get(PROFILE_KEY)!r} is not known", "1"))
    vendor, model = _check_camera(data.get("camera"), issues)
    tried = _checked("tried_on_hardware", "bool", REQUIRED, data, issues)
    producer = _checked("producer", "text", "", data, issues)
    description = _checked("description", "text", "", data, issues)
    nodes = _check_nodes(data.get("nodes"), issues)
    if issues:
        return None, issues
    return CameraProfile(vendor, model, tried, nodes, producer, description, path), []


def _checked(path: str, kind: str, default: Any, raw: Mapping[Any, Any], issues: list[ConfigIssue],
             allowed: str = "") -> Any:  # fmt: skip
    """The value of key ``path`` in ``raw`` (its section), checked as the station config checks a key of
    ``kind`` (edge/config_values.py); ``default`` (or ``REQUIRED``) when absent."""
    key = Key(path, kind, default, "", allowed=allowed)
    if key.name not in raw:
        if key.required:
            message = f"must be {TYPE_NAMES[kind]}, got nothing (the key is missing)"
            issues.append(ConfigIssue(path, message, allowed_text(key)))
        return default
    value, problem = check_value(key, raw[key.name], Path("."))
    if problem is not None:
        issues.append(ConfigIssue(path, problem, allowed_text(key)))
    return value


def _check_camera(raw: Any, issues: list[ConfigIssue]) -> tuple[str, str]:
    if not isinstance(raw, Mapping):
        issues.append(ConfigIssue("camera", f"must be a mapping, got {raw!r}", "{vendor: TEXT, model: TEXT}"))
        return "", ""
    issues.extend(_unknown_keys("camera", raw, CAMERA_KEYS))
    vendor, model = (
        _checked(
            f"camera.{name}",
            "text",
            REQUIRED,
            raw,
            issues,
            f"text: the Device{name.title()}Name the camera reports",
        )  # fmt: skip
        for name in CAMERA_KEYS
    )
    return vendor or "", model or ""


def _check_nodes(raw: Any, issues: list[ConfigIssue]) -> tuple[NodeWrite, ...]:
    if not isinstance(raw, list) or not raw:
        issues.append(
            ConfigIssue("nodes", f"must be a non-empty list, got {raw!r}", "- {node: NAME, value: V}")
        )
        return ()
    nodes = []
    for index, item in enumerate(raw):
        write = _check_node(f"nodes[{index}]", item, issues)
        if write is not None:
            nodes.append(write)
    return tuple(nodes)


def _check_node(where: str, item: Any, issues: list[ConfigIssue]) -> NodeWrite | None:
    if not isinstance(item, Mapping):
        issues.append(ConfigIssue(where, f"must be a mapping, got {item!r}", "{node: NAME, value: V}"))
        return None
    found = _unknown_keys(where, item, NODE_KEYS)
    name, value = item.get("node"), item.get("value")
    if not isinstance(name, str) or not NODE_NAME_RE.fullmatch(name):
        found.append(ConfigIssue(f"{where}.node", f"{name!r} is not a node name", "an SFNC node name, "
                                 "e.g. ExposureTime"))  # fmt: skip
    elif TRIGGER_NODE_RE.fullmatch(name):
        found.append(ConfigIssue(f"{where}.node", f"{name} is set by the station, not the profile",
                                 "any node but Trigger*; set source.genicam.trigger in the station config"))  # fmt: skip
    if not isinstance(value, str | int | float | bool) or (isinstance(value, str) and not value):
        found.append(ConfigIssue(f"{where}.value", f"must be a number, true/false or text, got {value!r}",
                                 "the node's value (an enumeration entry by name)"))  # fmt: skip
    elif name == "PixelFormat" and value not in SUPPORTED:
        found.append(ConfigIssue(f"{where}.value", f"pixel format {value!r} cannot be converted for the "
                                 "model", ", ".join(SUPPORTED)))  # fmt: skip
    verify = _checked(f"{where}.verify", "bool", True, item, found)
    note = _checked(f"{where}.note", "text", "", item, found)
    issues.extend(found)
    return None if found else NodeWrite(name, value, verify, note)


def _unknown_keys(section: str, raw: Mapping[Any, Any], known: tuple[str, ...]) -> list[ConfigIssue]:
    return [unknown_key(section, name, known) for name in raw if name not in known]
