"""The GenICam source on TLSimu, a real GenTL producer under software trigger: one frame per trigger."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from edge.camera.genicam import GenICamSource
from edge.camera.genicam_settings import TriggerSettings
from edge.errors import SourceError
from tests.genicam_cameras import tlsimu_settings, viky_settings
from tests.genicam_support import grab_until, is_part


def test_a_triggered_camera_delivers_one_frame_per_trigger_with_the_part_id(tlsimu: Path) -> None:
    with GenICamSource(tlsimu_settings(tlsimu)) as source:
        assert source.grab(0.4) is None and source.connected()  # a quiet line is not a loss
        source.announce_part("P-1")
        source.announce_part("P-2")
        frames = []
        for part in (None, None, "P-3"):
            source.trigger(part)
            frames.append(grab_until(source, lambda f: True, timeout_s=2)[0])
        assert source.grab(0.3) is None
    assert [f.meta["part_id"] for f in frames] == ["P-1", "P-2", "P-3"]
    assert [f.frame_id for f in frames] == [0, 1, 2]
    for frame in frames:
        assert is_part(frame) and frame.image.shape == (572, 768, 3)
        assert frame.meta["timestamp_source"] == "camera" and frame.meta["camera_timestamp_ns"] > 0
        assert 0 < frame.meta["trigger_to_frame_ms"] < 500


def test_every_trigger_is_accounted_for_when_the_camera_misses_some(tlsimu: Path) -> None:
    """TLSimu drops a trigger that comes while it is still exposing: a burst gives missed triggers."""
    parts = [f"burst-{n}" for n in range(8)]
    with GenICamSource(
        tlsimu_settings(tlsimu, trigger=TriggerSettings(mode="software", timeout_s=0.3))
    ) as source:
        for part in parts:
            source.trigger(part)
        outcomes = []
        deadline = time.monotonic() + 3
        while len(outcomes) < len(parts) and time.monotonic() < deadline:
            frame = source.grab(0.1)
            if frame is not None:
                outcomes.append(frame)
        status = source.status()
    assert sorted(f.meta["part_id"] for f in outcomes) == sorted(parts)  # one outcome per part, none twice
    missed = [f for f in outcomes if not is_part(f)]
    assert missed and all(
        f.meta["error"].startswith("missed-trigger: software trigger for part") for f in missed
    )
    assert status["missed_triggers"] == len(missed) and status["frames"] == len(parts) - len(missed)
    assert status["losses"] == 0  # a camera busy with the first trigger of a burst is not a lost camera


def test_a_frame_no_trigger_waits_for_any_more_is_a_stale_error(tlsimu: Path) -> None:
    settings = tlsimu_settings(tlsimu, trigger=TriggerSettings(mode="software", timeout_s=0.001))
    with GenICamSource(settings) as source:
        source.trigger("late")
        time.sleep(0.1)  # the frame is waiting in the pipe; its trigger has expired meanwhile
        missed, _ = grab_until(source, lambda f: True)
        stale, _ = grab_until(source, lambda f: True)
    assert missed.meta["error"].startswith("missed-trigger") and missed.meta["part_id"] == "late"
    assert stale.meta["error"].startswith("stale-frame: no software trigger was waiting")
    assert stale.image.shape == (572, 768, 3)  # the stale image is kept for the archive


def test_a_pixel_format_the_simulator_ignores_is_converted_as_delivered(tlsimu: Path, tmp_path: Path) -> None:
    """TLSimu reads back any PixelFormat written but keeps delivering RGB8: frames follow the buffer."""
    profile = tmp_path / "bayer.yaml"
    profile.write_text(
        "profile: 1\ncamera: {vendor: EMVA_D, model: TLSimuColor}\ntried_on_hardware: true\n"
        "nodes:\n  - {node: PixelFormat, value: BayerRG8}\n"
    )
    with GenICamSource(tlsimu_settings(tlsimu, profile=profile)) as source:
        source.trigger()
        frame, _ = grab_until(source, is_part)
    assert frame.meta["pixel_format"] == "RGB8" and frame.image.shape == (572, 768, 3)


def test_triggers_need_trigger_mode() -> None:
    with GenICamSource(viky_settings()) as source:
        with pytest.raises(SourceError, match="software trigger needs"):
            source.trigger()
        with pytest.raises(SourceError, match="the camera runs free"):
            source.announce_part("P")
