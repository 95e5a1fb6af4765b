"""The GenICam source on real GenTL producers: viky (free-run) and TLSimu (software trigger).

Camera loss is injected at the producer's calls (tests/genicam_faults.py): what harvesters raises
when a cable is pulled. The bookkeeping that decides stale frames and missed triggers is pure and
tested with tables first.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.camera.factory import open_source_from_config
from edge.camera.genicam import GenICamSource
from edge.camera.genicam_select import DeviceNotFound, DeviceSummary, select_device
from edge.camera.genicam_settings import (
    GENTL_PATH_VARIABLE,
    TRIGGER_MODES,
    DeviceSelector,
    GenICamSettings,
    TriggerSettings,
    producer_files,
)
from edge.camera.triggers import TriggerLedger
from edge.config import check_config_text
from edge.config_schema import TRIGGER_MODES as SCHEMA_TRIGGER_MODES
from edge.errors import SourceError
from tests.genicam_faults import CABLE_VARIABLE, HOOK, Cable
from tests.genicam_support import TLSIMU_COLOR, grab_until, is_part, tlsimu_cti, viky_cti

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- choosing the device (pure)


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
    assert all(f"serial {serial}" in str(error.value) for serial in ("100", "200", "300"))
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


# ---------------------------------------------------------------- triggers and parts (pure)

MS = 1_000_000


def test_software_triggers_take_announced_parts_in_order_and_frames_take_triggers() -> None:
    ledger = TriggerLedger("software", timeout_ns=100 * MS)
    ledger.announce("A", 0)
    ledger.announce("B", 1)
    assert ledger.trigger(10) == "A" and ledger.trigger(20, part_id="X") == "X" and ledger.trigger(30) == "B"
    matches = [ledger.frame(block, block * MS, t) for block, t in ((1, 15), (2, 25), (3, 35))]
    assert [(m.part_id, m.trigger_t_ns, m.stale) for m in matches] == [
        ("A", 10, ""),
        ("X", 20, ""),
        ("B", 30, ""),
    ]


STALE = [
    # (frames as (block id, camera ts, arrival), the words of the stale reason of the last one)
    ([(5, 50, 15), (5, 60, 25)], "block id 5 does not follow 5"),
    ([(5, 50, 15), (4, 60, 25)], "block id 4 does not follow 5"),
    ([(None, 50, 15), (None, 40, 25)], "camera timestamp is not after"),
    ([(1, 10, 15), (2, 20, 25), (3, 30, 35)], "no software trigger was waiting"),
]


@pytest.mark.parametrize(("frames", "words"), STALE)
def test_a_frame_that_goes_backwards_or_answers_no_trigger_is_stale(frames: list, words: str) -> None:
    ledger = TriggerLedger("software", timeout_ns=100 * MS)
    ledger.trigger(10)
    ledger.trigger(20)
    matches = [ledger.frame(block, ts, t) for block, ts, t in frames]
    assert all(not m.stale for m in matches[:-1]) and words in matches[-1].stale


def test_a_frame_that_arrived_before_its_trigger_was_sent_is_stale() -> None:
    ledger = TriggerLedger("software", timeout_ns=100 * MS)
    ledger.trigger(50)
    assert "no software trigger" in ledger.frame(1, None, 40).stale
    match = ledger.frame(2, None, 60)
    assert not match.stale and match.trigger_t_ns == 50


def test_a_block_id_gap_gives_up_the_oldest_triggers_so_the_frame_matches_its_own() -> None:
    ledger = TriggerLedger("software", timeout_ns=100 * MS)
    ledger.frame(7, None, 0)  # the last frame before: block 7
    for t, part in ((10, "a"), (20, "b"), (30, "c")):
        ledger.trigger(t, part)
    match = ledger.frame(10, None, 35)  # blocks 8 and 9 never arrived
    assert match.lost_frames == 2 and [w.part_id for w in match.missed] == ["a", "b"] and match.part_id == "c"


def test_waiting_triggers_and_parts_expire_as_missed_and_a_new_session_misses_the_rest() -> None:
    ledger = TriggerLedger("line", timeout_ns=100 * MS)
    ledger.announce("p1", 0)
    ledger.announce("p2", 150 * MS)
    assert [w.part_id for w in ledger.expire(120 * MS)] == ["p1"]
    assert ledger.frame(1, None, 160 * MS).part_id == "p2"
    ledger.announce("p3", 170 * MS)
    assert [w.part_id for w in ledger.new_session()] == ["p3"] and ledger.waiting == 0
    assert not ledger.frame(1, None, 200 * MS).stale  # block ids start again after a reopen


def test_trigger_modes_are_the_same_in_the_schema_and_the_source() -> None:
    assert SCHEMA_TRIGGER_MODES == TRIGGER_MODES


def test_the_station_config_makes_the_settings_and_refuses_a_bare_serial_number(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"x")
    text = (
        "station: s\nmodel: {path: m.onnx}\nsource: {kind: genicam, genicam: {device: {serial_number: %s}}}\n"
    )
    config, issues = check_config_text(text % "0042", tmp_path)
    assert config is None and "octal" not in issues[0].message and "'0042'" in issues[0].message
    config, issues = check_config_text(text % "'0042'", tmp_path)
    settings = GenICamSettings.from_config(config.source.genicam)
    assert settings.device == DeviceSelector(serial_number="0042") and settings.trigger.mode == "free-run"


# ---------------------------------------------------------------- viky: free-run


def viky_settings(**changes) -> GenICamSettings:
    base = {"producers": (viky_cti(),), "device": DeviceSelector(serial_number="1"), "start_timeout_s": 5.0}
    return GenICamSettings(**(base | changes))


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
    assert "serial 2" in source.name or "'2'" in source.name
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
    assert "[2] Machine Vision Games Ltd. Viky (serial 2)" in str(error.value)
    assert time.monotonic() - started < 3


# ---------------------------------------------------------------- TLSimu: software trigger


@pytest.fixture(scope="module")
def tlsimu() -> Path:
    return tlsimu_cti()


def tlsimu_settings(cti: Path, **changes) -> GenICamSettings:
    base = {
        "producers": (cti,),
        "device": DeviceSelector(serial_number=TLSIMU_COLOR),
        "trigger": TriggerSettings(mode="software", timeout_s=0.5),
        "start_timeout_s": 5.0,
    }
    return GenICamSettings(**(base | changes))


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
    assert "losses" not in status  # a camera busy with the first trigger of a burst is not a lost camera


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


def test_triggers_need_trigger_mode(tlsimu: Path) -> None:
    with GenICamSource(viky_settings()) as source:
        with pytest.raises(SourceError, match="software trigger needs"):
            source.trigger()
        with pytest.raises(SourceError, match="the camera runs free"):
            source.announce_part("P")


# ---------------------------------------------------------------- loss and return


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
    with GenICamSource(viky_settings(process_hook=HOOK)) as source:
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
    with GenICamSource(tlsimu_settings(tlsimu, process_hook=HOOK)) as source:
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
    with GenICamSource(viky_settings(process_hook=HOOK, frame_timeout_s=0.5)) as source:
        grab_until(source, is_part)
        cable.pull("stalled")
        lost_after_s = wait_for(lambda: not source.connected(), 3.0, source)
        cable.plug()
        grab_until(source, is_part)
    assert 0.4 < lost_after_s < 2.0


def test_a_camera_that_vanishes_in_trigger_mode_is_lost_by_its_access_status(
    tlsimu: Path, cable: Cable
) -> None:
    with GenICamSource(tlsimu_settings(tlsimu, process_hook=HOOK)) as source:
        cable.pull("vanished")
        lost_after_s = wait_for(lambda: not source.connected(), 2.0, source)
    assert lost_after_s < 1.0


def test_a_camera_that_stops_answering_software_triggers_is_lost(tlsimu: Path, cable: Cable) -> None:
    """The stream stalls but the device still answers: three unanswered triggers in a row are a loss."""
    settings = tlsimu_settings(
        tlsimu, process_hook=HOOK, trigger=TriggerSettings(mode="software", timeout_s=0.2)
    )
    with GenICamSource(settings) as source:
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
    with GenICamSource(viky_settings(process_hook=HOOK, profile=profile)) as source:
        grab_until(source, is_part)
        cable.pull()
        wait_for(lambda: not source.connected(), 2.0, source)
        profile.write_text(profile.read_text().replace("value: 400", "value: 900"))  # edited meanwhile
        cable.plug()
        with pytest.raises(SourceError, match="node Width = 900 is out of range"):
            wait_for(lambda: False, 5.0, source)
