"""systemd/inp-edge@.service: checked by systemd-analyze itself (verify, security --offline)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge.config_schema import DEFAULTS
from tests.conftest import REPO

UNIT = REPO / "systemd" / "inp-edge@.service"
JETSON = REPO / "systemd" / "jetson.conf"
DEPLOY = REPO / "docs" / "deploy.md"
INSTALLED_BINARY = "/opt/inp-edge/venv/bin/inp-edge"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze not installed (Debian package `systemd`; .ci/run installs it)"
)


def unit_settings(text: str) -> dict[str, list[str]]:
    """Every KEY=value of a unit file, a key's values in order."""
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def instantiate(folder: Path, *, extra: str = "", jetson: bool = False) -> Path:
    """The unit as inp-edge@test.service in ``folder``, ExecStart pointing at this checkout's binary."""
    binary = shutil.which("inp-edge") or str(Path(sys.executable).parent / "inp-edge")
    if not Path(binary).exists():
        binary = sys.executable  # verify checks that the command exists and is executable
    text = UNIT.read_text(encoding="utf-8")
    assert INSTALLED_BINARY in text
    unit = folder / "inp-edge@test.service"
    unit.write_text(text.replace(INSTALLED_BINARY, binary) + extra, encoding="utf-8")
    if jetson:
        (folder / "inp-edge@test.service.d").mkdir()
        shutil.copy(JETSON, folder / "inp-edge@test.service.d" / "jetson.conf")
    return unit


def analyze(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run([ANALYZE, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


@needs_analyze
def test_unit_passes_systemd_analyze_verify_with_nothing_on_stderr(tmp_path: Path) -> None:
    unit = instantiate(tmp_path)
    result = analyze("verify", f"./{unit.name}", cwd=tmp_path)
    assert result.returncode == 0 and result.stderr == "", result.stderr


@needs_analyze
def test_unit_with_the_jetson_drop_in_passes_verify(tmp_path: Path) -> None:
    unit = instantiate(tmp_path, jetson=True)
    result = analyze("verify", f"./{unit.name}", cwd=tmp_path)
    assert result.returncode == 0 and result.stderr == "", result.stderr


@needs_analyze
def test_verify_reports_a_bad_value_on_stderr(tmp_path: Path) -> None:
    """The check above can fail: verify exits 0 on a bad value but says so on stderr."""
    unit = instantiate(tmp_path, extra="[Service]\nRestartSec=soon\n")
    result = analyze("verify", f"./{unit.name}", cwd=tmp_path)
    assert "soon" in result.stderr


@needs_analyze
def test_security_exposure_is_at_most_the_documented_value(tmp_path: Path) -> None:
    documented = re.search(
        r"Overall exposure level for inp-edge@line1\.service: (\d+\.\d)", DEPLOY.read_text()
    )
    assert documented is not None, "docs/deploy.md states the exposure systemd-analyze security prints"
    unit = instantiate(tmp_path)
    result = analyze("security", "--offline=true", "--no-pager", f"./{unit.name}", cwd=tmp_path)
    measured = re.search(r"Overall exposure level for \S+: (\d+\.\d)", result.stdout + result.stderr)
    assert measured is not None, result.stdout[-2000:] + result.stderr
    assert float(measured.group(1)) <= float(documented.group(1))


def test_unit_is_a_notify_service_per_station_with_its_own_folders() -> None:
    settings = unit_settings(UNIT.read_text(encoding="utf-8"))
    assert settings["Type"] == ["notify"] and settings["NotifyAccess"] == ["main"]
    assert settings["ExecStart"] == [f"{INSTALLED_BINARY} run --config /etc/inp-edge/%i.yaml"]
    assert settings["StateDirectory"] == ["inp-edge/%i"] and settings["CacheDirectory"] == ["inp-edge/%i"]
    assert settings["Restart"] == ["on-failure"] and "StartLimitBurst" in settings
    assert settings["User"] == ["inp-edge"] and settings["DevicePolicy"] == ["closed"]
    assert "char-usb_device rw" in settings["DeviceAllow"] and "char-nvidia* rw" in settings["DeviceAllow"]


def test_watchdog_period_leaves_room_for_the_default_stall_limit() -> None:
    """A stall is noticed after notify.stall_s; systemd acts WatchdogSec after the last ping."""
    watchdog = unit_settings(UNIT.read_text(encoding="utf-8"))["WatchdogSec"]
    assert watchdog == ["30s"] and DEFAULTS["notify.stall_s"] < 30
