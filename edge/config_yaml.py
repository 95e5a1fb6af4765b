"""YAML in and out for the station config: parsing that keeps each key's line, and plain dicts out.

``parse_yaml`` reads the text once into nodes (so every key path has its line, and a key written
twice in one mapping is caught: plain PyYAML keeps the last silently), then builds the data.
``config_to_dict`` turns a config (any object with the schema's attributes) into plain values by
walking the schema, so the written YAML has every key in the reference order.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from edge.config_checks import ConfigIssue
from edge.config_schema import children
from edge.config_values import resolve_path

FILE = "(file)"  # key path of an issue with the file as a whole


def read_yaml_text(path: Path) -> tuple[str | None, list[ConfigIssue]]:
    """The text of a config or profile file, or (None, the issue saying why it cannot be read)."""
    try:
        return path.read_text(encoding="utf-8"), []
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return None, [ConfigIssue(FILE, f"cannot read {path}: {reason}", "a readable UTF-8 YAML file")]


def parse_yaml(text: str) -> tuple[Any, dict[str, int], list[ConfigIssue]]:
    """(data, line of each key path, issues): a syntax error gives its line and column."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        lines: dict[str, int] = {}
        issues: list[ConfigIssue] = []
        _index_keys(node, "", lines, issues)
        return loader.construct_document(node) if node is not None else None, lines, issues
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        line = mark.line + 1 if mark else None
        return None, {}, [ConfigIssue(FILE, f"YAML syntax error{where}: {problem}", "valid YAML", line)]
    except yaml.YAMLError as exc:
        return None, {}, [ConfigIssue(FILE, f"YAML error: {exc}", "valid YAML")]
    finally:
        loader.dispose()


def _index_keys(node: Any, prefix: str, lines: dict[str, int], issues: list[ConfigIssue]) -> None:
    """Record the line of every key path (list items as ``path[i]``); a key written twice is an issue."""
    if isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.setdefault(f"{prefix}[{index}]", item.start_mark.line + 1)
            _index_keys(item, f"{prefix}[{index}]", lines, issues)
    if not isinstance(node, yaml.MappingNode):
        return
    seen: set[str] = set()
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            continue
        path = join_path(prefix, key_node.value)
        line = key_node.start_mark.line + 1
        if key_node.value in seen:
            message = f"is set twice (first at line {lines[path]}); the last value would count"
            issues.append(ConfigIssue(path, message, "each key once", line))
        seen.add(key_node.value)
        lines.setdefault(path, line)
        _index_keys(value_node, path, lines, issues)


def with_line(issue: ConfigIssue, lines: Mapping[str, int]) -> ConfigIssue:
    path = issue.key_path
    while path and path not in lines:
        path = path.rpartition(".")[0]
    if issue.line is not None or path not in lines:
        return issue
    return ConfigIssue(issue.key_path, issue.message, issue.allowed, lines[path])


def config_to_dict(config: Any, relative_to: Path | None = None) -> dict[str, Any]:
    """Every key of ``config`` as plain YAML / JSON values; paths inside ``relative_to`` made relative."""
    return _section_dict("", config, relative_to)


def _section_dict(section: str, obj: Any, relative_to: Path | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in children(section):
        value = getattr(obj, key.name)
        if key.kind == "section":
            out[key.name] = None if value is None else _section_dict(key.path, value, relative_to)
        elif isinstance(value, Path):
            out[key.name] = _path_text(value, relative_to)
        elif isinstance(value, tuple):
            out[key.name] = [
                _path_text(item, relative_to) if isinstance(item, Path) else item for item in value
            ]
        else:
            out[key.name] = value
    return out


def _path_text(path: Path, relative_to: Path | None) -> str:
    if relative_to is not None:
        try:
            return path.relative_to(resolve_path(".", relative_to)).as_posix() or "."
        except ValueError:
            pass
    return str(path)


def join_path(section: str, name: str) -> str:
    return f"{section}.{name}" if section else name


def config_to_yaml(config: Any, relative_to: Path | None = None) -> str:
    """YAML that loads back to ``config`` (from a file in ``relative_to``, when paths are relative)."""
    header = "# inp-edge station config; reference: docs/config.md; check: inp-edge check-config FILE\n"
    body = yaml.safe_dump(config_to_dict(config, relative_to), sort_keys=False, allow_unicode=True)
    return header + body
