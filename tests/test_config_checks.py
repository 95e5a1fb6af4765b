"""check-config finds every problem in a station config and names its key path, line and allowed values."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.config import check_config_file
from edge.model.preprocess import Roi
from tests.config_support import MINIMAL, issue_paths, only_issue, write_station

M = MINIMAL


def model_with(settings: str) -> str:
    """A config whose model mapping has ``settings`` beside its path (flow YAML)."""
    return f"station: s1\nmodel: {{path: model.onnx, {settings}}}\n"


BROKEN = [
    ("wrong type", M + "queues: {inspect: four}", "queues.inspect", "whole number"),
    ("bool as text", M + "publish: {overlays: 'true'}", "publish.overlays", "true or false"),
    (
        "unknown key",
        M + "inspection: {deadline: 5}",
        "inspection.deadline",
        "did you mean inspection.deadline_ms",
    ),
    ("key in the wrong section", M + "deadline_ms: 5", "deadline_ms", "did you mean inspection.deadline_ms"),
    ("missing model", "station: s1\nmodel: {path: nothere.onnx}", "model.path", "does not exist"),
    ("model is a folder", "station: s1\nmodel: {path: .}", "model.path", "not a file"),
    ("model section missing", "station: s1", "model.path", "required"),
    ("section not a mapping", "station: s1\nmodel: model.onnx", "model", "must be a mapping"),
    (
        "ROI outside the generated frame",
        M + "source: {size_px: 128}\ninspection: {roi: {x: 100, y: 0, width: 64, height: 64}}",
        "inspection.roi.width",
        "128x128",
    ),
    (
        "ROI past the frame",
        M + "inspection: {roi: {x: 0, y: 200, width: 8, height: 8}}",
        "inspection.roi.y",
        "outside",
    ),
    (
        "ROI part missing",
        M + "inspection: {roi: {x: 0, y: 0, width: 8}}",
        "inspection.roi.height",
        "required",
    ),
    ("bad endpoint", M + "publish: {endpoint: 'tcp://127.0.0.1'}", "publish.endpoint", "tcp://HOST:PORT"),
    (
        "port out of range",
        M + "publish: {endpoint: 'tcp://127.0.0.1:70000'}",
        "publish.endpoint",
        "not a valid",
    ),
    (
        "duplicate endpoints",
        M + "publish: {endpoint: 'tcp://127.0.0.1:6000'}\ncontrol: {endpoint: 'tcp://127.0.0.1:6000'}",
        "control.endpoint",
        "publish.endpoint",
    ),
    (
        "duplicate port on a wildcard",
        M + "publish: {endpoint: 'tcp://*:6000'}\ncontrol: {endpoint: 'tcp://127.0.0.1:6000'}",
        "control.endpoint",
        "each needs its own",
    ),
    ("remote control", M + "control: {endpoint: 'tcp://0.0.0.0:5557'}", "control.endpoint", "allow_remote"),
    ("bad enum", M + "inspection: {fit: crop}", "inspection.fit", "stretch, letterbox"),
    ("enum in the wrong case", M + "logging: {level: debug}", "logging.level", "did you mean 'DEBUG'"),
    ("negative number", M + "archive: {quota_mb: -1}", "archive.quota_mb", "> 0"),
    ("zero deadline", M + "inspection: {deadline_ms: 0}", "inspection.deadline_ms", "out of range"),
    ("fraction above one", M + "source: {defect_fraction: 1.5}", "source.defect_fraction", "0..1"),
    ("not finite", M + "inspection: {thresholds: {image: .nan}}", "inspection.thresholds.image", "finite"),
    ("missing required station", "model: {path: model.onnx}", "station", "required"),
    ("station with a space", M.replace("line1-cam1", "'line 1'"), "station", "not a valid name"),
    (
        "bare serial",
        M + "source: {kind: genicam, genicam: {device: {serial_number: 0042}}}",
        "source.genicam.device.serial_number",
        "in quotes",
    ),
    ("replay path missing", M + "source: {kind: replay, path: no-such}", "source.path", "does not exist"),
    (
        "replay without a path",
        M + "source: {kind: replay}",
        "source.path",
        "required when source.kind is replay",
    ),
    ("unknown provider", model_with("providers: [gpu]"), "model.providers", "gpu"),
    ("auto with others", model_with("providers: [auto, cpu]"), "model.providers", "auto"),
    ("provider twice", model_with("providers: [cuda, CUDAExecutionProvider]"), "model.providers", "twice"),
    ("auto in capitals", model_with("providers: [AUTO]"), "model.providers", "unknown provider 'AUTO'"),
    ("providers not a list", model_with("providers: cuda"), "model.providers", "list"),
    (
        "missing CURVE key",
        M + "publish: {curve_secret_key_file: k.key_secret}",
        "publish.curve_secret_key_file",
        "exist",
    ),
    ("state dir is a file", M + "state_dir: model.onnx", "state_dir", "not a folder"),
    ("key written twice", M + "queues:\n  inspect: 2\n  inspect: 3", "queues.inspect", "twice"),
    ("empty file", "", "(file)", "empty file"),
    ("not a mapping", "- station", "(file)", "mapping"),
]


@pytest.mark.parametrize(("case", "text", "key_path", "words"), BROKEN, ids=[row[0] for row in BROKEN])
def test_broken_config_names_the_key(tmp_path: Path, case: str, text: str, key_path: str, words: str) -> None:
    config, issues = check_config_file(write_station(tmp_path, text))
    assert config is None
    issue = only_issue(issues, key_path)
    assert words in f"{issue.message} (allowed: {issue.allowed})"
    assert issue.allowed, "every issue says what is allowed"


def test_yaml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    text = "station: s1\nmodel:\n  path: model.onnx\n providers: [cpu]\n"
    config, issues = check_config_file(write_station(tmp_path, text))
    assert config is None
    assert issue_paths(issues) == ["(file)"]
    assert issues[0].line == 4
    assert re.search(r"line 4, column \d+", issues[0].message)


def test_issue_carries_the_line_of_its_key(tmp_path: Path) -> None:
    _, issues = check_config_file(write_station(tmp_path, MINIMAL + "queues:\n  output: 0\n"))
    assert only_issue(issues, "queues.output").line == 5
    assert str(only_issue(issues, "queues.output")) == (
        "queues.output: 0 is out of range (allowed: integer 1..10000) [line 5]"
    )


def test_several_errors_are_all_reported(tmp_path: Path) -> None:
    text = """\
        stat_dir: x
        source:
          kind: replay
          size_px: 8
        model:
          path: missing.onnx
          warmup_runs: -1
        inspection:
          fit: crop
        publish:
          endpoint: udp://x
        logging:
          level: LOUD
        """
    config, issues = check_config_file(write_station(tmp_path, text))
    assert config is None
    assert set(issue_paths(issues)) == {
        "station",
        "stat_dir",
        "source.size_px",
        "source.path",
        "model.path",
        "model.warmup_runs",
        "inspection.fit",
        "publish.endpoint",
        "logging.level",
    }


def test_roi_checked_against_the_first_replay_image(tmp_path: Path) -> None:
    images = tmp_path / "parts"
    images.mkdir()
    cv2.imwrite(str(images / "part10.png"), np.zeros((40, 40), np.uint8))
    cv2.imwrite(str(images / "part2.png"), np.zeros((48, 64, 3), np.uint8))  # first in replay order
    roi = "inspection:\n  roi: {x: 10, y: 0, width: 60, height: 48}\n"
    text = MINIMAL + "source:\n  kind: replay\n  path: parts\n" + roi
    _, issues = check_config_file(write_station(tmp_path, text))
    assert "64x48" in only_issue(issues, "inspection.roi.width").message
    assert only_issue(issues, "inspection.roi.width").allowed == "1..54"
    fitting = text.replace("width: 60", "width: 54")
    config, issues = check_config_file(write_station(tmp_path, fitting))
    assert issues == []
    assert config is not None and config.inspection.roi == Roi(10, 0, 54, 48)


def test_roi_checked_against_the_video_frame(tmp_path: Path) -> None:
    video = tmp_path / "line.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (80, 60))
    for _ in range(3):
        writer.write(np.full((60, 80, 3), 128, np.uint8))
    writer.release()
    roi = "inspection:\n  roi: {x: 0, y: 0, width: 80, height: 61}\n"
    _, issues = check_config_file(
        write_station(tmp_path, MINIMAL + "source:\n  kind: replay\n  path: line.avi\n" + roi)
    )
    assert issue_paths(issues) == ["inspection.roi.height"]
    assert "80x60" in issues[0].message


def test_replay_folder_without_images_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    _, issues = check_config_file(
        write_station(tmp_path, MINIMAL + "source:\n  kind: replay\n  path: empty\n")
    )
    assert "no images" in only_issue(issues, "source.path").message
