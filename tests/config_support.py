"""Writing a station config for the config tests, and picking the issues a check found."""

from __future__ import annotations

import textwrap
from pathlib import Path

from edge.config import ConfigIssue

MINIMAL = "station: line1-cam1\nmodel:\n  path: model.onnx\n"


def write_station(folder: Path, text: str, *, model: bool = True) -> Path:
    """A config file in ``folder``, and a model.onnx beside it (check-config only needs it to exist)."""
    if model:
        (folder / "model.onnx").write_bytes(b"onnx")
    path = folder / "station.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def issue_paths(issues: list[ConfigIssue]) -> list[str]:
    return [issue.key_path for issue in issues]


def only_issue(issues: list[ConfigIssue], key_path: str) -> ConfigIssue:
    found = [issue for issue in issues if issue.key_path == key_path]
    assert found, f"no issue at {key_path}: {[str(issue) for issue in issues]}"
    return found[0]
