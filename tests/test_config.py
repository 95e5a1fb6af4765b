"""The station config (contract 3): every problem found with its key path, defaults, round trip, CLI, docs."""

from __future__ import annotations

import dataclasses
import json
import re
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.cli import main
from edge.config import (
    SECTION_TYPES,
    ConfigIssue,
    ModelConfig,
    StationConfig,
    check_config_file,
    config_to_yaml,
    load_config,
    write_config,
)
from edge.config_schema import FITS, KEYS, KEYS_BY_PATH, SOURCE_KINDS, children, reference_markdown
from edge.config_values import Endpoint, parse_endpoint
from edge.errors import ConfigError
from edge.model.preprocess import Roi

REPO = Path(__file__).resolve().parents[1]
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


M = MINIMAL


def model_with(settings: str) -> str:
    """A config whose model mapping has ``settings`` beside its path (flow YAML)."""
    return f"station: s1\nmodel: {{path: model.onnx, {settings}}}\n"


# (case, config text, expected key path, words expected in the message or allowed values)
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


def test_minimal_config_loads_with_every_default_and_absolute_paths(tmp_path: Path) -> None:
    config = load_config(write_station(tmp_path, MINIMAL))
    assert config.station == "line1-cam1"
    assert config.state_dir == tmp_path / "state"
    assert config.model.path == tmp_path / "model.onnx"
    assert config.model.path.is_absolute() and config.state_dir.is_absolute()
    assert config.cache_dir == tmp_path / "state" / "cache"
    assert config.archive_folder == tmp_path / "state" / "archive"
    assert config.inspection.roi is None
    assert config.model.providers == ("auto",)
    assert config.inspection.thresholds.image is None
    assert config.publish.endpoint == "tcp://127.0.0.1:5556"
    for key in KEYS:
        if (
            key.kind != "section"
            and key.kind != "path"
            and not key.required
            and key.parent != "inspection.roi"
        ):
            assert _value_at(config, key.path) == key.default, key.path


def _value_at(config: StationConfig, path: str) -> object:
    value: object = config
    for name in path.split("."):
        value = getattr(value, name)
    return value


def test_relative_paths_are_relative_to_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.onnx").write_bytes(b"onnx")
    station_dir = tmp_path / "stations"
    station_dir.mkdir()
    text = (
        "station: s1\nstate_dir: /var/lib/inp-edge/s1\nmodel:\n  path: ../models/m.onnx\n  cache_dir: cache\n"
    )
    monkeypatch.chdir(tmp_path)
    config = load_config(Path("stations") / write_station(station_dir, text, model=False).name)
    assert config.model.path == tmp_path / "models" / "m.onnx"
    assert config.model.cache_dir == station_dir / "cache"
    assert config.state_dir == Path("/var/lib/inp-edge/s1")


def test_float_written_with_an_exponent_is_a_number(tmp_path: Path) -> None:
    text = MINIMAL + "inspection:\n  thresholds:\n    image: 1e-3\n    pixel: 2\n"
    config = load_config(write_station(tmp_path, text))
    assert config.inspection.thresholds.image == 0.001
    assert config.inspection.thresholds.pixel == 2.0 and isinstance(config.inspection.thresholds.pixel, float)
    _, issues = check_config_file(write_station(tmp_path, MINIMAL + "inspection: {deadline_ms: '250'}"))
    assert "must be a number, got text '250'" in only_issue(issues, "inspection.deadline_ms").message


def test_station_written_as_a_number_is_a_name(tmp_path: Path) -> None:
    config = load_config(write_station(tmp_path, MINIMAL.replace("line1-cam1", "7")))
    assert config.station == "7"


def test_load_config_lists_every_issue_and_the_fix(tmp_path: Path) -> None:
    path = write_station(tmp_path, "station: s1\nmodel:\n  path: none.onnx\nqueues:\n  inspect: 0\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "model.path: " in message and "(allowed: an existing file)" in message
    assert "queues.inspect: 0 is out of range (allowed: integer 1..1000)" in message
    assert f"inp-edge check-config {path}" in caught.value.fix


def test_config_to_yaml_round_trip(tmp_path: Path) -> None:
    (tmp_path / "parts").mkdir()
    cv2.imwrite(str(tmp_path / "parts" / "a.png"), np.zeros((100, 120), np.uint8))
    (tmp_path / "station.key_secret").write_text("secret", encoding="utf-8")
    text = """\
        station: line2.cam-3
        source: {kind: replay, path: parts, loop: true, rate_pps: 2.5}
        model: {path: model.onnx, providers: [cuda, CPUExecutionProvider], allow_cpu_fallback: true}
        inspection:
          product: washer_b
          roi: {x: 10, y: 20, width: 100, height: 80}
          fit: letterbox
          thresholds: {image: 0.25, min_region_area_px: 12.5}
        publish: {endpoint: ipc:///tmp/s1.pub, curve_secret_key_file: station.key_secret}
        control: {endpoint: tcp://10.0.0.5:7000, allow_remote: true}
        archive: {folder: /srv/archive, sample_pass_every: 50}
        logging: {level: DEBUG}
        """
    config = load_config(write_station(tmp_path, text))
    elsewhere = tmp_path / "copy"
    elsewhere.mkdir()
    # from the same folder: the text loads back to the same config
    (tmp_path / "again.yaml").write_text(config_to_yaml(config, relative_to=tmp_path), encoding="utf-8")
    assert load_config(tmp_path / "again.yaml") == config
    # from another folder: absolute paths keep it identical
    write_config(config, elsewhere / "station.yaml")
    assert load_config(elsewhere / "station.yaml") == config


def test_write_config_keeps_paths_inside_its_folder_relative(tmp_path: Path) -> None:
    config = load_config(write_station(tmp_path, MINIMAL))
    written = write_config(config, tmp_path / "out.yaml").read_text(encoding="utf-8")
    assert "path: model.onnx" in written and "state_dir: state" in written
    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / "model.onnx").write_bytes(b"onnx")
    (moved / "station.yaml").write_text(written, encoding="utf-8")
    assert load_config(moved / "station.yaml").model.path == moved / "model.onnx"


def test_hand_built_config_serialises_every_key(tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(b"onnx")
    config = StationConfig(station="demo", state_dir=tmp_path / "state", model=ModelConfig(path=model))
    write_config(config, tmp_path / "demo.yaml")
    assert load_config(tmp_path / "demo.yaml") == config


# --- the command ---------------------------------------------------------------------------------


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


# --- one schema: dataclasses, other modules, docs ---------------------------------------------------


def test_dataclass_fields_and_defaults_follow_the_schema() -> None:
    for section, cls in SECTION_TYPES.items():
        names = {key.name for key in children(section)}
        assert {field.name for field in dataclasses.fields(cls)} == names, section
        for field in dataclasses.fields(cls):
            path = f"{section}.{field.name}" if section else field.name
            if field.default is not dataclasses.MISSING:
                assert field.default == KEYS_BY_PATH[path].default, path


def test_schema_choices_match_the_modules_that_use_them() -> None:
    from edge.camera.factory import KIND_SETTINGS
    from edge.camera.generated import MAX_SIZE_PX, MIN_SIZE_PX
    from edge.model.preprocess import FITS as PREPROCESS_FITS

    assert FITS == PREPROCESS_FITS
    size = KEYS_BY_PATH["source.size_px"]
    assert (size.low, size.high) == (MIN_SIZE_PX, MAX_SIZE_PX)
    for kind in SOURCE_KINDS:  # every key a source takes is in the schema
        assert {f"source.{name}" for name in KIND_SETTINGS[kind]} <= set(KEYS_BY_PATH), kind


ENDPOINTS = [
    ("tcp://127.0.0.1:5556", Endpoint("tcp", "127.0.0.1", 5556)),
    ("tcp://*:5556", Endpoint("tcp", "*", 5556)),
    ("tcp://127.0.0.1:*", Endpoint("tcp", "127.0.0.1", None)),
    ("tcp://[::1]:80", Endpoint("tcp", "[::1]", 80)),
    ("tcp://eth0:5556", Endpoint("tcp", "eth0", 5556)),
    ("ipc:///run/inp-edge/s1.pub", Endpoint("ipc", "/run/inp-edge/s1.pub")),
    ("inproc://verdicts", Endpoint("inproc", "verdicts")),
    ("tcp://127.0.0.1:0", None),
    ("tcp://127.0.0.1:65536", None),
    ("tcp://127.0.0.1", None),
    ("tcp://:5556", None),
    ("udp://127.0.0.1:5556", None),
    ("ipc://", None),
    ("127.0.0.1:5556", None),
]


@pytest.mark.parametrize(("text", "expected"), ENDPOINTS)
def test_parse_endpoint(text: str, expected: Endpoint | None) -> None:
    assert parse_endpoint(text) == expected


def test_docs_reference_table_is_in_sync_with_the_schema() -> None:
    doc = (REPO / "docs" / "config.md").read_text(encoding="utf-8")
    assert reference_markdown() in doc, "regenerate the table: inp-edge check-config --reference"


def test_docs_example_is_a_valid_complete_config(tmp_path: Path) -> None:
    doc = (REPO / "docs" / "config.md").read_text(encoding="utf-8")
    example = re.search(r"```yaml\n(.*?)```", doc, re.S)
    assert example is not None
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "washer-int8.onnx").write_bytes(b"onnx")
    config, issues = check_config_file(write_station(tmp_path, example.group(1), model=False))
    assert issues == [] and config is not None
    without_comments = re.sub(r"#.*", "", example.group(1))
    written_keys = set(re.findall(r"([a-z_]+):\s", without_comments))
    assert {key.name for key in KEYS} <= written_keys, "the example shows every key"
