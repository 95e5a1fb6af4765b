"""A camera that goes away and comes back: losses are found, lost frames and parts reported, the source reopens.

Camera loss is injected at the producer's calls (tests/genicam_faults.py): what harvesters raises
when a cable is pulled.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.camera.genicam import GenICamSource
from edge.camera.genicam_settings import TriggerSettings
from edge.errors import SourceError
from tests.genicam_cameras import tlsimu_settings, viky_settings
from tests.genicam_faults import CABLE_VARIABLE, FAULTS, Cable
from tests.genicam_support import grab_until, is_part

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def cable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cable]:
    cable = Cable(tmp_path)
    monkeypatch.setenv(CABLE_VARIABLE, str(cable.marker))  # the camera process inherits it
    yield cable
    cable.plug()


def wait_for(condition, timeout_s: float, source: GenICamSource) -> float:
    """Grab until ``condition()``; the seconds it took (the test fails past ``timeout_s``)."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout_s, "the source did not change state in time"
        source.grab(0.05)
    return time.monotonic() - started


def test_a_camera_that_goes_away_comes_back_and_the_lost_frames_are_reported(cable: Cable) -> None:
    with GenICamSource(viky_settings(), FAULTS) as source:
        for _ in range(3):
            grab_until(source, is_part)
        cable.pull()
        deadline = time.monotonic() + 2
        while source.connected() and time.monotonic() < deadline:
            source.grab(0.05)
        assert not source.connected() and source.status()["losses"] == 1
        for _ in range(5):  # while it is away grab answers within its timeout
            started = time.monotonic()
            assert source.grab(0.1) is None
            assert time.monotonic() - started < 0.5
        time.sleep(2.5)  # long enough for the back-off to reach its cap (1 s)
        cable.plug()
        back = time.monotonic()
        first, before = grab_until(source, is_part)
        returned_s = time.monotonic() - back
        status = source.status()
    print(f"first frame {returned_s:.2f} s after the camera came back (away {first.meta['camera_away_s']} s)")
    assert returned_s < 2.0, f"first frame {returned_s:.2f} s after the camera came back"
    assert first.meta["reconnected"] is True and first.meta["session"] == 2
    assert [f.meta["event"] for f in before] == ["camera-lost"]
    lost = before[0].meta["lost_frames"]
    assert (
        lost == first.meta["lost_frames"] >= 50
    )  # about 3 s at 20 frames/s, estimated: viky restarts its ids
    assert before[0].meta["error"].startswith(f"camera-lost: {lost} frames lost: the camera was away")
    assert status["reconnects"] == 1 and status["lost_frames"] == lost and status["connected"]


def test_a_quiet_trigger_line_is_not_a_loss_but_a_pulled_cable_is(tlsimu: Path, cable: Cable) -> None:
    with GenICamSource(tlsimu_settings(tlsimu), FAULTS) as source:
        for _ in range(8):  # 0.8 s without a trigger
            assert source.grab(0.1) is None
        assert source.connected()
        cable.pull()
        deadline = time.monotonic() + 2
        while source.connected() and time.monotonic() < deadline:
            source.grab(0.05)
        assert not source.connected()  # the access status said so: no frame was due
        source.trigger("while-away")
        away, _ = grab_until(source, lambda f: True)
        cable.plug()
        deadline = time.monotonic() + 3
        while not source.connected() and time.monotonic() < deadline:
            source.grab(0.05)
        source.trigger("after")
        after, _ = grab_until(source, is_part)
    assert away.meta["error"].startswith("camera-lost: software trigger for part while-away")
    assert after.meta["part_id"] == "after" and after.meta["reconnected"] is True


def test_a_stream_that_stalls_is_lost_by_its_missing_frames_in_free_run(cable: Cable) -> None:
    with GenICamSource(viky_settings(frame_timeout_s=0.5), FAULTS) as source:
        grab_until(source, is_part)
        cable.pull("stalled")
        lost_after_s = wait_for(lambda: not source.connected(), 3.0, source)
        cable.plug()
        grab_until(source, is_part)
    assert 0.4 < lost_after_s < 2.0


def test_a_camera_that_vanishes_in_trigger_mode_is_lost_by_its_access_status(
    tlsimu: Path, cable: Cable
) -> None:
    with GenICamSource(tlsimu_settings(tlsimu), FAULTS) as source:
        cable.pull("vanished")
        lost_after_s = wait_for(lambda: not source.connected(), 2.0, source)
    assert lost_after_s < 1.0


def test_a_camera_that_stops_answering_software_triggers_is_lost(tlsimu: Path, cable: Cable) -> None:
    """The stream stalls but the device still answers: three unanswered triggers in a row are a loss."""
    settings = tlsimu_settings(tlsimu, trigger=TriggerSettings(mode="software", timeout_s=0.2))
    with GenICamSource(settings, FAULTS) as source:
        source.trigger("ok")
        grab_until(source, is_part)
        cable.pull("stalled")
        missed = []
        for part in ("a", "b", "c"):
            source.trigger(part)
            missed.append(grab_until(source, lambda f: True)[0])
        wait_for(lambda: not source.connected(), 1.0, source)
        assert source.status()["losses"] == 1
    assert [f.meta["event"] for f in missed] == ["missed-trigger"] * 3


def test_a_camera_that_comes_back_refusing_its_profile_stops_the_source(cable: Cable, tmp_path: Path) -> None:
    profile = tmp_path / "cam.yaml"
    profile.write_text((REPO / "camera_profiles" / "viky.yaml").read_text())
    with GenICamSource(viky_settings(profile=profile), FAULTS) as source:
        grab_until(source, is_part)
        cable.pull()
        wait_for(lambda: not source.connected(), 2.0, source)
        profile.write_text(profile.read_text().replace("value: 400", "value: 900"))  # edited meanwhile
        cable.plug()
        with pytest.raises(SourceError, match="node Width = 900 is out of range"):
            wait_for(lambda: False, 5.0, source)
