"""The GenICam source on viky, a real GenTL producer that runs free: frames, overruns, the factory, start-up."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from edge.camera.factory import open_source_from_config
from edge.camera.genicam import GenICamSource
from edge.camera.genicam_settings import DeviceSelector
from edge.config import check_config_text
from edge.errors import SourceError
from tests.genicam_cameras import viky_settings
from tests.genicam_support import grab_until, is_part, viky_cti

REPO = Path(__file__).resolve().parents[1]


def test_viky_streams_rgb_frames_with_its_frame_ids_and_host_time() -> None:
    with GenICamSource(viky_settings()) as source:
        assert source.connected()
        frames = [grab_until(source, is_part)[0] for _ in range(3)]
    ids = [frame.frame_id for frame in frames]
    assert ids == sorted(ids) and len(set(ids)) == 3 and ids == [f.meta["block_id"] for f in frames]
    for frame in frames:
        assert frame.image.shape == (400, 400, 3) and frame.image.flags.owndata
        assert frame.meta["timestamp_source"] == "host" and frame.meta["camera"].endswith("(serial 1)")
        assert frame.meta["pixel_format"] == "RGBa8" and "part_id" not in frame.meta
    assert frames[0].t_capture_ns < frames[1].t_capture_ns < frames[2].t_capture_ns


def test_frames_the_source_does_not_take_in_time_are_overruns_never_silent_drops(tmp_path: Path) -> None:
    profile = tmp_path / "fast.yaml"
    profile.write_text(
        (REPO / "camera_profiles" / "viky.yaml").read_text().replace("value: 20.0", "value: 200.0")
    )
    with GenICamSource(viky_settings(profile=profile, buffers=2)) as source:
        grab_until(source, is_part)
        time.sleep(0.3)  # the acquisition loop stalls: the camera process fills its two slots, then drops
        got = []
        overran = False
        while not (overran and is_part(got[-1])):  # until the camera is read again after the overruns
            got.append(grab_until(source, lambda f: True)[0])
            overran = overran or got[-1].meta.get("event") == "overrun"
            assert len(got) < 500
        status = source.status()
    overruns = [frame for frame in got if frame.meta.get("event") == "overrun"]
    assert overruns and status["overruns"] == len(overruns) and not status.get("lost_frames")
    assert all(f.meta["error"].startswith("overrun: the camera process had no free slot") for f in overruns)
    ids = [frame.frame_id for frame in got]
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # every frame accounted for, in order


def test_the_factory_opens_a_genicam_station_source(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"x")
    profile = REPO / "camera_profiles" / "viky.yaml"
    text = (
        f"station: s\nmodel: {{path: m.onnx}}\nsource: {{kind: genicam, genicam: {{producers: [{viky_cti()}], "
        f"profile: {profile}, device: {{serial_number: '2'}}}}}}\n"
    )
    config, issues = check_config_text(text, tmp_path)
    assert issues == []
    with open_source_from_config(config.source) as source:
        frame, _ = grab_until(source, is_part)
    assert source.name == "genicam serial_number '2' (free-run)"
    assert frame.image.shape == (400, 400, 3)


def test_start_up_errors_are_clear(tmp_path: Path) -> None:
    fake = tmp_path / "broken.cti"
    fake.write_text("not a shared library")
    with pytest.raises(SourceError, match=r"GenTL producer .*broken.cti cannot be loaded"):
        GenICamSource(viky_settings(producers=(fake,))).__enter__()
    started = time.monotonic()
    with pytest.raises(
        SourceError, match="not ready within 0.8 s: no camera matches serial_number '7'"
    ) as error:
        GenICamSource(
            viky_settings(device=DeviceSelector(serial_number="7"), start_timeout_s=0.8)
        ).__enter__()
    assert "[2] Machine Vision Games Ltd. Viky, serial '2'" in str(error.value)
    assert time.monotonic() - started < 3
