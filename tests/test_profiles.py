"""Camera profiles: the schema (files, check-config), and applying them to a real simulated camera."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge.camera.genicam_device import DROP, Camera, open_harvester
from edge.camera.genicam_nodes import FLOAT, INTEGER, NodeError, apply_writes, values_match
from edge.camera.genicam_settings import DeviceSelector, GenICamSettings, TriggerSettings
from edge.camera.profile import NodeWrite, check_profile_text, load_profile
from edge.cli import main
from edge.config import check_config_file
from edge.errors import ConfigError
from tests.genicam_support import viky_cti

REPO = Path(__file__).resolve().parents[1]
PROFILES = sorted((REPO / "camera_profiles").glob("*.yaml"))
SIMULATORS = {"viky.yaml", "tlsimu.yaml"}
GOOD = "profile: 1\ncamera: {vendor: V, model: M}\ntried_on_hardware: false\nnodes:\n  - {node: Width, value: 64}\n"


def test_every_shipped_profile_is_valid_and_says_whether_it_was_tried() -> None:
    assert len(PROFILES) >= 5
    for path in PROFILES:
        profile = load_profile(path)
        assert profile.tried_on_hardware == (path.name in SIMULATORS), path.name
        assert profile.nodes and profile.vendor and profile.model
        assert not any(write.node.startswith("Trigger") for write in profile.nodes)


BROKEN = [
    ("no schema", GOOD.replace("profile: 1\n", "profile: 7\n"), "profile", "not known"),
    ("no model", GOOD.replace(", model: M", ""), "camera.model", "must be text"),
    ("tried not a bool", GOOD.replace("false", "maybe"), "tried_on_hardware", "true or false"),
    ("empty nodes", GOOD.split("nodes:")[0] + "nodes: []\n", "nodes", "non-empty list"),
    ("unknown top key", GOOD + "gain: 3\n", "gain", "unknown key"),
    ("unknown node key", GOOD + "  - {node: Gain, valeu: 3}\n", "nodes[1].valeu", "unknown key"),
    ("no value", GOOD + "  - {node: Gain}\n", "nodes[1].value", "must be a number"),
    ("bad node name", GOOD + "  - {node: 'Gain Raw', value: 1}\n", "nodes[1].node", "not a node name"),
    (
        "trigger node",
        GOOD + "  - {node: TriggerMode, value: 'On'}\n",
        "nodes[1].node",
        "source.genicam.trigger",
    ),
    ("pixel format", GOOD + "  - {node: PixelFormat, value: Mono12}\n", "nodes[1].value", "BayerRG8"),
    (
        "verify not bool",
        GOOD + "  - {node: Gain, value: 1, verify: no-way}\n",
        "nodes[1].verify",
        "true or false",
    ),
    ("syntax", GOOD + "  - {node: Gain, value: [\n", "(file)", "YAML syntax error"),
]


@pytest.mark.parametrize(("case", "text", "key_path", "words"), BROKEN, ids=[row[0] for row in BROKEN])
def test_a_broken_profile_names_the_key_and_the_line(case: str, text: str, key_path: str, words: str) -> None:
    profile, issues = check_profile_text(text)
    assert profile is None
    found = [issue for issue in issues if issue.key_path == key_path]
    assert found and words in f"{found[0].message} {found[0].allowed}", issues
    assert found[0].line is not None or key_path == "profile"


def test_check_config_recognises_a_profile_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(REPO / "camera_profiles" / "basler-ace-usb3.yaml")]) == 0
    out = capsys.readouterr().out
    assert "valid camera profile for Basler" in out and "NOT yet tried on hardware" in out
    broken = tmp_path / "broken.yaml"
    broken.write_text(GOOD + "  - {node: TriggerSource, value: Line1}\n")
    assert main(["check-config", str(broken), "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["kind"] == "camera profile" and not report["valid"]
    assert report["issues"][0]["key_path"] == "nodes[1].node" and report["issues"][0]["line"] == 6


def station(tmp_path: Path, profile_text: str, roi: str = "null") -> Path:
    (tmp_path / "m.onnx").write_bytes(b"onnx")
    (tmp_path / "cam.yaml").write_text(profile_text)
    path = tmp_path / "station.yaml"
    path.write_text(
        "station: s1\nmodel: {path: m.onnx}\nsource: {kind: genicam, genicam: {profile: cam.yaml, "
        f"device: {{serial_number: '0042'}}}}}}\ninspection: {{roi: {roi}}}\n"
    )
    return path


def test_a_station_with_a_broken_profile_is_refused_naming_the_profile_key(tmp_path: Path) -> None:
    config, issues = check_config_file(station(tmp_path, GOOD + "  - {node: Gain}\n"))
    assert config is None
    assert [issue.key_path for issue in issues] == ["source.genicam.profile"]
    assert "nodes[1].value" in issues[0].message and "cam.yaml" in issues[0].message


def test_the_profile_size_checks_the_region_of_interest(tmp_path: Path) -> None:
    text = GOOD + "  - {node: Height, value: 48}\n"
    config, issues = check_config_file(station(tmp_path, text, "{x: 0, y: 0, width: 64, height: 64}"))
    assert config is None and [issue.key_path for issue in issues] == ["inspection.roi.height"]
    config, issues = check_config_file(station(tmp_path, text, "{x: 0, y: 0, width: 64, height: 48}"))
    assert issues == [] and config.source.genicam.profile == tmp_path / "cam.yaml"
    assert config.source.genicam.device.serial_number == "0042"


def test_load_profile_lists_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(GOOD.replace("false", "maybe") + "  - {node: Gain}\n")
    with pytest.raises(ConfigError, match="2 problem") as error:
        load_profile(path)
    assert "check-config" in error.value.fix


# ---------------------------------------------------------------- applied to viky, node by node


@pytest.fixture(scope="module")
def harvester() -> Iterator[Any]:
    """One Harvester at a time: viky lists its devices to the first one open in a process only."""
    harvester = open_harvester((viky_cti(),))
    yield harvester
    harvester.reset()


@pytest.fixture(scope="module")
def viky(harvester: Any) -> Iterator[Camera]:
    camera = Camera.open(harvester, GenICamSettings(device=DeviceSelector(serial_number="0")), None)
    yield camera
    camera.close()


REFUSED = [
    (NodeWrite("Widht", 320), "does not exist on this camera; nearest: Width"),
    (NodeWrite("Width", 900), "Width = 900 is out of range (allowed: 100..800 in steps of 1)"),
    (NodeWrite("Width", "wide"), "takes an integer"),
    (NodeWrite("PixelFormat", "BayerRG8"), "no entry 'BayerRG8' available (allowed: RGBa8, Mono8)"),
    (NodeWrite("PixelFormat", False), "YAML read the value as False"),
    (NodeWrite("AcquisitionMode", "Continuous"), "is read-only"),
    (NodeWrite("AcquisitionFrameRate", 500.0), "out of range (allowed: 1..200"),
    (NodeWrite("FancyBallOperation", "now"), "is a command"),
]


@pytest.mark.parametrize(
    ("write", "words"), REFUSED, ids=[row[0].node + str(row[0].value) for row in REFUSED]
)
def test_a_write_the_camera_refuses_names_node_camera_and_allowed_values(
    viky: Camera, write: NodeWrite, words: str
) -> None:
    with pytest.raises(NodeError) as error:
        apply_writes(viky.node_map, (write,), viky.summary.label, "profile cam.yaml")
    text = str(error.value)
    assert words in text and "Viky (serial 0)" in text and "profile cam.yaml" in text, text


def test_writes_are_read_back_unless_verify_is_false(viky: Camera) -> None:
    applied = apply_writes(
        viky.node_map,
        (
            NodeWrite("Width", 320),
            NodeWrite("AcquisitionFrameRate", 20.5),
            NodeWrite("Height", 240, verify=False),
        ),
        viky.summary.label,
        "test",
    )
    assert [(a.node, a.read_back) for a in applied] == [
        ("Width", 320),
        ("AcquisitionFrameRate", 21.0),
        ("Height", None),
    ]
    assert viky.node_map.get_node("Height").value == 240


READ_BACK = [
    (INTEGER, 320, 320, 1.0, True),
    (INTEGER, 320, 328, 8.0, False),
    (FLOAT, 5000.0, 5003.0, 0.0, True),  # within 0.5 %
    (FLOAT, 5000.0, 5100.0, 0.0, False),
    (FLOAT, 20.5, 21.0, 1.0, True),  # rounded to the node's step
    (FLOAT, 20.0, 22.0, 1.0, False),
]


@pytest.mark.parametrize(("kind", "written", "read", "step", "same"), READ_BACK)
def test_read_back_comparison(kind: int, written: Any, read: Any, step: float, same: bool) -> None:
    assert values_match(kind, written, read, step) is same


def test_a_trigger_mode_the_camera_cannot_do_is_refused_at_open(harvester: Any) -> None:
    settings = GenICamSettings(device=DeviceSelector(index=1), trigger=TriggerSettings(mode="software"))
    with pytest.raises(NodeError, match="no TriggerMode or TriggerSoftware node"):
        Camera.open(harvester, settings, None)


def test_the_viky_profile_applies_cleanly(harvester: Any) -> None:
    profile = load_profile(REPO / "camera_profiles" / "viky.yaml")
    camera = Camera.open(harvester, GenICamSettings(device=DeviceSelector(index=2)), profile)
    try:
        assert camera.expected_shape() == (400, 400, 3) and camera.node_pixel_format == "RGBa8"
    finally:
        camera.close()


def test_profile_yaml_values_keep_their_types() -> None:
    data = yaml.safe_load((REPO / "camera_profiles" / "basler-ace-usb3.yaml").read_text())
    kinds = {item["node"]: type(item["value"]) for item in data["nodes"]}
    assert kinds["ExposureAuto"] is str and kinds["ExposureTime"] is float and kinds["Width"] is int


def test_a_frame_with_no_room_is_not_converted_and_its_buffer_goes_back(viky: Camera) -> None:
    """``out`` says DROP: no image, the ids still come, and the driver gets every buffer back."""

    def fetch(out: Any) -> Any:
        for _ in range(50):
            grabbed = viky.fetch(0.2, out)
            if grabbed is not None:
                return grabbed
        raise AssertionError("viky delivered no frame within 10 s")

    viky.start()
    try:
        dropped = [fetch(lambda shape: DROP) for _ in range(viky.acquirer.num_buffers + 2)]
        kept = fetch(None)
    finally:
        viky.acquirer.stop()
    assert all(grabbed.image is None and grabbed.block_id is not None for grabbed in dropped)
    assert kept.image is not None and kept.image.shape == viky.expected_shape()
    assert kept.block_id > dropped[-1].block_id
