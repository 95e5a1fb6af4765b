"""Loading a station config: defaults, absolute paths, value types, and the round trip back to YAML."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.config import (
    ModelConfig,
    StationConfig,
    check_config_file,
    config_to_yaml,
    load_config,
    write_config,
)
from edge.config_schema import KEYS
from edge.errors import ConfigError
from tests.config_support import MINIMAL, only_issue, write_station


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
