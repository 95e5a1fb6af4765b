"""The USB3 Vision usbfs memory check: a pure table, and the reader on real files."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from edge.usbfs import check_usbfs_memory, read_usbfs_memory_mb, warn_if_usbfs_low


@pytest.mark.parametrize(
    ("memory_mb", "ok"),
    [(None, True), (0, True), (16, False), (999, False), (1000, True), (2048, True)],
)
def test_usbfs_limit_below_1000_mb_is_too_low_and_0_is_unlimited(memory_mb: int | None, ok: bool) -> None:
    result = check_usbfs_memory(memory_mb)
    assert result.ok is ok and result.memory_mb == memory_mb


@pytest.mark.parametrize(("text", "expected"), [("16\n", 16), ("1000", 1000), ("0\n", 0), ("lots", None)])
def test_reader_parses_the_sysfs_value(tmp_path: Path, text: str, expected: int | None) -> None:
    path = tmp_path / "usbfs_memory_mb"
    path.write_text(text)
    assert read_usbfs_memory_mb(path) == expected


def test_reader_without_usbcore_says_unknown(tmp_path: Path) -> None:
    assert read_usbfs_memory_mb(tmp_path / "absent") is None


def test_low_limit_warns_with_the_fix(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "usbfs_memory_mb"
    path.write_text("16\n")
    with caplog.at_level(logging.WARNING, logger="inp_edge.usbfs"):
        result = warn_if_usbfs_low(path)
    assert not result.ok
    (record,) = caplog.records
    assert "16 MB" in record.message and f"echo 1000 | sudo tee {path}" in record.message
    assert "usbcore.usbfs_memory_mb=1000" in record.message


def test_enough_memory_stays_quiet(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "usbfs_memory_mb"
    path.write_text("1000\n")
    with caplog.at_level(logging.WARNING, logger="inp_edge.usbfs"):
        assert warn_if_usbfs_low(path).ok
    assert caplog.records == []
