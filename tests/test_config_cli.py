"""The `inp-edge check-config` command: exit codes, the summary, every issue, JSON and the reference."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.cli import main
from edge.config_schema import reference_markdown
from tests.config_support import MINIMAL, write_station


def test_check_config_valid_exits_0_with_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_station(tmp_path, MINIMAL)
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: valid" in out
    assert f"model       {tmp_path / 'model.onnx'}" in out
    assert "tcp://127.0.0.1:5556" in out and "deadline 1000 ms" in out
    assert f"engine cache {tmp_path / 'state' / 'cache'}" in out


def test_check_config_invalid_exits_2_with_every_issue(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_station(
        tmp_path, "station: s1\nmodel:\n  path: model.onnx\n  providrs: [cpu]\nqueues:\n  inspect: 0\n"
    )
    assert main(["check-config", str(path)]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{path}: 2 problems"
    assert lines[1].startswith(
        "  model.providrs: unknown key; did you mean model.providers? (allowed: keys here:"
    )
    assert lines[2] == "  queues.inspect: 0 is out of range (allowed: integer 1..1000) [line 6]"


def test_check_config_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write_station(tmp_path, MINIMAL)
    assert main(["check-config", str(good), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is True and report["issues"] == []
    assert report["config"]["model"]["path"] == str(tmp_path / "model.onnx")
    assert report["config"]["queues"] == {"inspect": 4, "output": 64}
    bad = write_station(tmp_path, "station: s1\n")
    assert main(["check-config", str(bad), "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False and report["config"] is None
    assert report["issues"][0]["key_path"] == "model.path"


def test_check_config_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(tmp_path / "none.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().out


def test_check_config_help_and_reference(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--help"]) == 0
    assert "key.path: what is wrong (allowed:" in capsys.readouterr().out
    assert main(["check-config", "--reference"]) == 0
    assert capsys.readouterr().out == reference_markdown()
