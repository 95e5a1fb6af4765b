"""The GenICam source in the whole service, soak measurements, `inp-edge cameras` and the memory tool.

The targets of the GenICam issue are measured here, each by the test named beside it:

- SIGTERM to exit <= 5 s with the camera open and a trigger wait in progress:
  test_sigterm_with_the_camera_waiting_for_a_trigger_exits_within_5_s
- 1000 frames from viky through the service, resident memory growth <= 5 MB, the producer never
  starved: test_1000_frames_through_the_service_keep_memory_flat_and_the_camera_fed
- 20 loss-and-return cycles, resident memory growth <= 5 MB, each first frame < 2 s after the
  return: test_20_losses_and_returns_keep_memory_flat
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from edge.cli import main
from edge.publish.listen import Listener
from edge.publish.messages import HEARTBEAT, VERDICT
from edge.tools.memory import rss_mb
from tests.genicam_faults import CABLE_VARIABLE, Cable
from tests.genicam_support import TLSIMU_COLOR, tlsimu_cti, viky_cti
from tests.service_harness import collect_verdicts, write_station

REPO = Path(__file__).resolve().parents[1]


def genicam_station(folder: Path, genicam: dict[str, Any], **sections: dict[str, Any]) -> Path:
    return write_station(folder, source={"kind": "genicam", "genicam": genicam}, **sections)


def test_sigterm_with_the_camera_waiting_for_a_trigger_exits_within_5_s(tmp_path: Path) -> None:
    genicam = {
        "producers": [str(tlsimu_cti())],
        "device": {"serial_number": TLSIMU_COLOR},
        "profile": str(REPO / "camera_profiles" / "tlsimu.yaml"),
        "trigger": {"mode": "software"},
    }
    config = genicam_station(tmp_path, genicam)
    with Listener(f"ipc://{tmp_path}/pub", kinds=(HEARTBEAT,)) as listener:
        process = subprocess.Popen(
            [sys.executable, "-m", "edge.cli", "run", "--config", str(config)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            armed = False
            while not armed and time.monotonic() < deadline:
                message = listener.receive(0.2)
                armed = message is not None and message.header["camera_connected"]
            assert armed, "the service never reported the camera connected"
            signalled = time.monotonic()
            process.send_signal(signal.SIGTERM)
            process.wait(10)
            stop_s = time.monotonic() - signalled
        finally:
            process.kill()
        stderr = process.stderr.read()
    assert process.returncode == 0, stderr
    assert stop_s <= 5.0, f"{stop_s:.2f} s from SIGTERM to exit"
    print(f"SIGTERM to exit with a trigger wait in progress: {stop_s:.2f} s")


@pytest.mark.slow
def test_1000_frames_through_the_service_keep_memory_flat_and_the_camera_fed(tmp_path: Path) -> None:
    """The service runs as `inp-edge run` and its resident memory is read from /proc between the 100th
    and the 1100th verdict; the verdict ring (control.ring_size) is kept small so that it is full, as it
    is on a line after its first minutes, before the measurement starts."""
    profile = (REPO / "camera_profiles" / "viky.yaml").read_text().replace("value: 20.0", "value: 100.0")
    (tmp_path / "fast.yaml").write_text(profile)  # viky at 100 frames/s
    genicam = {"producers": [str(viky_cti())], "device": {"serial_number": "0"}, "profile": "fast.yaml"}
    config = genicam_station(tmp_path, genicam, publish={"overlays": False}, archive={"enabled": False},
                             control={"ring_size": 50}, queues={"inspect": 64})  # fmt: skip
    with Listener(f"ipc://{tmp_path}/pub", kinds=(VERDICT,)) as listener:
        process = subprocess.Popen(
            [sys.executable, "-m", "edge.cli", "run", "--config", str(config)],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            warm = collect_verdicts(listener, count=100, timeout_s=60)
            start_mb = rss_mb(process.pid)
            soak = collect_verdicts(listener, count=1000, timeout_s=60)
            grown_mb = rss_mb(process.pid) - start_mb
            process.send_signal(signal.SIGTERM)
            process.wait(10)
        finally:
            process.kill()
    assert len(warm) == 100 and len(soak) == 1000, process.stderr.read()
    blocks = [header["frame_meta"]["block_id"] for header in warm + soak]
    assert blocks == list(range(blocks[0], blocks[0] + len(blocks))), "the camera skipped frames"
    assert all(header["verdict"] != "error" for header in soak), "an overrun, a lost or a late frame"
    assert grown_mb <= 5.0, f"resident memory grew {grown_mb:.1f} MB over 1000 frames"
    print(f"1000 frames from viky through the service: resident memory {grown_mb:+.1f} MB")


LOSS_CYCLES = """
import json, pathlib, sys, time
from edge.camera.genicam import GenICamSource
from edge.tools.memory import rss_mb
from tests.genicam_faults import FAULTS, Cable
from tests.genicam_support import grab_until, is_part
from tests.genicam_cameras import viky_settings

cable = Cable(pathlib.Path(sys.argv[1]))
returns_s = []
with GenICamSource(viky_settings(), FAULTS) as source:
    grab_until(source, is_part)
    for cycle in range(22):
        if cycle == 2:
            start_mb = rss_mb()  # after the first cycles warmed up what is made once
        cable.pull()
        while source.connected():
            source.grab(0.05)
        cable.plug()
        back = time.monotonic()
        grab_until(source, is_part)
        returns_s.append(time.monotonic() - back)
    grown_mb = rss_mb() - start_mb
    status = source.status()
print(json.dumps({"grown_mb": grown_mb, "returns_s": returns_s, "status": status}))
"""


@pytest.mark.slow
def test_20_losses_and_returns_keep_memory_flat(tmp_path: Path) -> None:
    """Measured in a process of its own: the test runner's memory moves with whatever ran before."""
    cable = Cable(tmp_path)
    env = {**os.environ, CABLE_VARIABLE: str(cable.marker), "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", LOSS_CYCLES, str(tmp_path)], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    status, returns_s, grown_mb = result["status"], result["returns_s"], result["grown_mb"]
    assert status["losses"] == status["reconnects"] == 22 and status["connected"]
    assert max(returns_s) < 2.0
    assert grown_mb <= 5.0, f"resident memory grew {grown_mb:.1f} MB over 20 losses"
    print(f"20 losses and returns: resident memory {grown_mb:+.1f} MB; first frame after the return "
          f"{min(returns_s):.2f}..{max(returns_s):.2f} s")  # fmt: skip


def test_cameras_lists_each_camera_with_its_formats_size_and_trigger(
    capsys: pytest.CaptureFixture[str],
) -> None:
    producers = ["--producer", str(viky_cti()), "--producer", str(tlsimu_cti())]
    assert main(["cameras", *producers]) == 0
    text = capsys.readouterr().out
    assert "[0] Machine Vision Games Ltd. Viky, serial '0', id 'VikyTL_DEV_red'" in text
    assert "pixel formats RGBa8, Mono8 (now RGBa8); size 400x400 (max 800x800); no trigger" in text
    assert "EMVA_D TLSimuColor, serial 'SN_InterfaceA_1', user name 'Center'" in text
    assert "trigger: software" in text
    assert main(["cameras", *producers, "--json"]) == 0
    cameras = json.loads(capsys.readouterr().out)["cameras"]
    assert len(cameras) == 7
    tlsimu = next(camera for camera in cameras if camera["serial_number"] == TLSIMU_COLOR)
    assert tlsimu["details"]["width"] == 768 and "TriggerSoftware" in tlsimu["details"]["trigger_nodes"]
    assert tlsimu["user_name"] == "Center" and tlsimu["producer"].endswith("TLSimu.cti")


def test_cameras_without_a_producer_says_how_to_get_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GENICAM_GENTL64_PATH", raising=False)
    assert main(["cameras"]) == 2
    assert "GENICAM_GENTL64_PATH" in capsys.readouterr().err
    monkeypatch.setenv("GENICAM_GENTL64_PATH", str(viky_cti().parent))
    assert main(["cameras", "--no-open"]) == 0
    assert "not opened (--no-open)" in capsys.readouterr().out


def test_the_harvester_memory_tool_reports_each_case_in_a_fresh_process(tmp_path: Path) -> None:
    from edge.tools.harvester_memory import main as harvester_memory

    out = tmp_path / "memory.json"
    assert (
        harvester_memory(["--producer", str(viky_cti()), "--cycles", "2", "--warmup", "1", "--out", str(out)])
        == 0
    )
    report = json.loads(out.read_text())
    assert [(row["producer"], row["case"]) for row in report["results"]] == [
        ("viky.cti", "acquirer"),
        ("viky.cti", "harvester"),
    ]
    for row in report["results"]:
        assert row["rss_after_warmup_mb"] > 0
        assert abs(row["growth_mb"] - (row["rss_end_mb"] - row["rss_after_warmup_mb"])) < 0.02
    assert report["cycles"] == 2 and report["versions"]["harvesters"]
