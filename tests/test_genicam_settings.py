"""GenICam settings (pure): the device a selector picks, where the producers come from, the station config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge.camera.genicam_select import DeviceNotFound, DeviceSummary, select_device
from edge.camera.genicam_settings import GENTL_PATH_VARIABLE, DeviceSelector, producer_files
from edge.config import check_config_text
from edge.errors import SourceError


def device(index: int, serial: str, user: str = "", id_: str = "") -> DeviceSummary:
    return DeviceSummary(index, "V", "M", serial, user, id_ or f"dev{index}", "U3V", "p.cti", "read-write")


DEVICES = [device(0, "100", "left"), device(1, "200", "right"), device(2, "300", "left")]
CHOICES = [
    (DeviceSelector(serial_number="200"), 1),
    (DeviceSelector(id="dev2"), 2),
    (DeviceSelector(user_name="right"), 1),
    (DeviceSelector(index=0), 0),
    (DeviceSelector(user_name="left", serial_number="300"), 2),
]


@pytest.mark.parametrize(("selector", "index"), CHOICES)
def test_the_device_is_chosen_by_serial_id_user_name_or_index(selector: DeviceSelector, index: int) -> None:
    assert select_device(DEVICES, selector).index == index


def test_a_selector_that_matches_none_lists_the_devices_found() -> None:
    with pytest.raises(DeviceNotFound) as error:
        select_device(DEVICES, DeviceSelector(serial_number="999"))
    assert "serial_number '999'" in str(error.value)
    assert all(f"serial '{serial}'" in str(error.value) for serial in ("100", "200", "300"))
    with pytest.raises(DeviceNotFound, match="no camera found"):
        select_device([], DeviceSelector())


def test_a_selector_that_matches_several_lists_them_and_says_how_to_pick() -> None:
    with pytest.raises(SourceError) as error:
        select_device(DEVICES, DeviceSelector(user_name="left"))
    assert not isinstance(error.value, DeviceNotFound)  # not worth waiting for: the config must say more
    assert "2 cameras match" in str(error.value) and "[0]" in str(error.value) and "[2]" in str(error.value)
    assert "serial_number" in error.value.fix
    with pytest.raises(SourceError, match="3 cameras match no selector"):
        select_device(DEVICES, DeviceSelector())


def test_producers_come_from_the_config_else_from_the_gentl_path(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    for name in ("b.cti", "a.cti", "readme.txt"):
        (tmp_path / "a" / name).write_text("x")
    folder_files = (tmp_path / "a" / "a.cti", tmp_path / "a" / "b.cti")
    assert producer_files((tmp_path / "a",)) == folder_files
    env = {GENTL_PATH_VARIABLE: f"{tmp_path / 'nowhere'}{os.pathsep}{tmp_path / 'a'}"}
    assert producer_files((), env) == folder_files
    with pytest.raises(SourceError, match="no GenTL producer"):
        producer_files((), {})
    with pytest.raises(SourceError, match="does not exist"):
        producer_files((tmp_path / "gone.cti",), env)


def test_the_station_config_makes_the_settings_and_refuses_a_bare_serial_number(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"x")
    text = (
        "station: s\nmodel: {path: m.onnx}\nsource: {kind: genicam, genicam: {device: {serial_number: %s}}}\n"
    )
    config, issues = check_config_text(text % "0042", tmp_path)
    assert config is None and "octal" not in issues[0].message and "'0042'" in issues[0].message
    config, issues = check_config_text(text % "'0042'", tmp_path)
    settings = config.source.genicam
    assert settings.device == DeviceSelector(serial_number="0042") and settings.trigger.mode == "free-run"
