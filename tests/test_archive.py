from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge import archive as archive_module
from edge.archive import Archive, ArchiveSettings, should_archive
from edge.atomic import write_bytes_atomic
from edge.errors import ConfigError

DAY_S = 86_400
T0_NS = 1_699_963_200 * 10**9  # 2023-11-14 12:00 UTC


def local_day(wall_ns: int) -> str:
    return time.strftime("%Y%m%d", time.localtime(wall_ns / 1e9))


class Clock:
    """Wall clock for the archive: one second per call, days moved on by hand."""

    def __init__(self) -> None:
        self.now_ns = T0_NS

    def __call__(self) -> int:
        self.now_ns += 10**9
        return self.now_ns


def frame(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    image[..., 0] = 250  # strongly red in RGB: a swapped channel order shows
    return image


OVERLAY = b"\xff\xd8 overlay jpeg bytes \xff\xd9"


def header(seq: int, verdict: str = "fail") -> dict:
    return {"schema": 1, "seq": seq, "verdict": verdict, "reason": "", "score": 1.5}


def files_on_disk(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file())


def bytes_on_disk(folder: Path) -> int:
    return sum(path.stat().st_size for path in files_on_disk(folder))


@pytest.mark.parametrize(
    ("verdict", "pass_index", "every", "capture", "expected"),
    [
        ("fail", 0, 0, False, "fail"),
        ("fail", 5, 3, True, "fail"),
        ("error", 0, 0, False, "error"),
        ("error", 7, 1, True, "error"),
        ("pass", 0, 0, False, None),
        ("pass", 0, 0, True, "capture"),
        ("pass", 3, 3, True, "capture"),
        ("pass", 0, 3, False, "sample"),
        ("pass", 1, 3, False, None),
        ("pass", 2, 3, False, None),
        ("pass", 3, 3, False, "sample"),
        ("pass", 5, 1, False, "sample"),
    ],
)
def test_should_archive_table(verdict, pass_index, every, capture, expected):
    assert should_archive(verdict, pass_index, every, capture) == expected


def test_should_archive_refuses_an_unknown_verdict():
    with pytest.raises(ValueError, match="unknown verdict"):
        should_archive("maybe", 0, 0, False)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"quota_bytes": 0}, "archive.quota_mb"),
        ({"frame_format": "jpg"}, "archive.frame_format"),
    ],
)
def test_settings_refuse_bad_values_naming_the_key(tmp_path, kwargs, key):
    with pytest.raises(ConfigError) as caught:
        ArchiveSettings(**{"folder": tmp_path, "quota_bytes": 10**6, **kwargs})
    assert key in str(caught.value)


def test_save_writes_frame_overlay_and_json(tmp_path):
    archive = Archive(ArchiveSettings(tmp_path / "archive", 10**7), wall_clock_ns=Clock())
    image = frame()
    outcome = archive.save("000001-17", header(1), image, OVERLAY, "fail")

    assert outcome.ok and outcome.error == ""
    names = [path.name for path in outcome.paths]
    assert names == ["000001-17.png", "000001-17.jpg", "000001-17.json"]  # JSON last
    day_dir = tmp_path / "archive" / local_day(T0_NS + 10**9)
    assert all(path.parent == day_dir for path in outcome.paths)
    record = json.loads((day_dir / "000001-17.json").read_text())
    assert record["seq"] == 1 and record["reason"] == ""  # the verdict header as published
    assert record["archive"]["reason"] == "fail"
    assert record["archive"]["files"] == {"frame": "000001-17.png", "overlay": "000001-17.jpg"}
    saved = cv2.cvtColor(cv2.imread(str(day_dir / "000001-17.png"), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert np.array_equal(saved, image)  # lossless, channel order kept
    assert (day_dir / "000001-17.jpg").read_bytes() == OVERLAY
    status = archive.status()
    assert (status.records, status.bytes_used, status.failures) == (1, bytes_on_disk(tmp_path), 0)
    assert status.writable and status.last_error == ""


def test_mono_frame_without_overlay_is_archived(tmp_path):
    archive = Archive(ArchiveSettings(tmp_path, 10**7), wall_clock_ns=Clock())
    mono = frame()[..., 1]
    outcome = archive.save("cap-1", header(2, "pass"), mono, None, "capture")
    assert outcome.ok and [path.suffix for path in outcome.paths] == [".png", ".json"]
    assert np.array_equal(cv2.imread(str(outcome.paths[0]), cv2.IMREAD_UNCHANGED), mono)
    assert json.loads(outcome.paths[1].read_text())["archive"]["files"]["overlay"] is None


def test_quota_evicts_the_oldest_records_first(tmp_path):
    probe = Archive(ArchiveSettings(tmp_path / "probe", 10**7), wall_clock_ns=Clock())
    record_bytes = probe.save("r0", header(0), frame(), OVERLAY, "fail").bytes_written
    quota = int(3.5 * record_bytes)
    archive = Archive(ArchiveSettings(tmp_path / "archive", quota), wall_clock_ns=Clock())

    outcomes = [archive.save(f"r{seq}", header(seq), frame(), OVERLAY, "fail") for seq in range(6)]

    assert all(outcome.ok for outcome in outcomes)
    assert [outcome.evicted_records for outcome in outcomes] == [0, 0, 0, 1, 1, 1]
    stems = sorted({path.name.split(".")[0] for path in files_on_disk(tmp_path / "archive")})
    assert stems == ["r3", "r4", "r5"]
    status = archive.status()
    assert status.records == 3
    assert status.bytes_used == bytes_on_disk(tmp_path / "archive") <= quota


def test_saving_the_same_id_replaces_the_record(tmp_path):
    archive = Archive(ArchiveSettings(tmp_path, 10**7), wall_clock_ns=Clock())
    archive.save("same", header(1), frame(1), OVERLAY, "fail")
    archive.save("same", header(1), frame(2), None, "capture")
    status = archive.status()
    assert status.records == 1 and status.bytes_used == bytes_on_disk(tmp_path)
    assert len(files_on_disk(tmp_path)) == 2


def test_record_larger_than_the_whole_quota_is_refused(tmp_path):
    archive = Archive(ArchiveSettings(tmp_path, 500), wall_clock_ns=Clock())
    outcome = archive.save("big", header(1), frame(), OVERLAY, "fail")
    assert not outcome.ok and "larger than the whole quota" in outcome.error
    assert files_on_disk(tmp_path) == []
    status = archive.status()
    assert status.failures == 1 and "quota" in status.last_error and status.writable


def test_restart_rescan_keeps_totals_and_removes_leftovers(tmp_path):
    folder = tmp_path / "archive"
    clock = Clock()
    archive = Archive(ArchiveSettings(folder, 10**7), wall_clock_ns=clock)
    for seq in range(4):
        if seq == 2:
            clock.now_ns += DAY_S * 10**9  # the next two records on the next day
        assert archive.save(f"r{seq}", header(seq), frame(seq), OVERLAY, "fail").ok
    before = archive.status()
    day_dirs = sorted(path for path in folder.iterdir() if path.is_dir())
    assert [path.name for path in day_dirs] == [local_day(T0_NS), local_day(T0_NS + DAY_S * 10**9)]
    leftovers = [
        day_dirs[1] / ".r9.png.k2j3h4.tmp",  # temp files of a crashed atomic write
        folder / ".stray.json.a1b2.tmp",
        day_dirs[1] / "r8.png",  # incomplete records: crash before their JSON
        day_dirs[1] / "r8.jpg",
    ]
    for path in leftovers:
        path.write_bytes(b"partial")
    foreign = folder / "README.txt"
    foreign.write_text("not the archive's")

    again = Archive(ArchiveSettings(folder, 10**7), wall_clock_ns=clock)

    after = again.status()
    assert (after.records, after.bytes_used) == (before.records, before.bytes_used)
    assert not any(path.exists() for path in leftovers)
    assert foreign.exists()
    assert after.bytes_used == bytes_on_disk(folder) - foreign.stat().st_size


def test_after_restart_the_oldest_records_go_first(tmp_path):
    folder = tmp_path / "archive"
    clock = Clock()
    archive = Archive(ArchiveSettings(folder, 10**7), wall_clock_ns=clock)
    sizes = [
        archive.save(f"r{seq}", header(seq), frame(seq), OVERLAY, "fail").bytes_written for seq in range(4)
    ]

    smaller = Archive(ArchiveSettings(folder, sum(sizes[2:]) + sizes[0] + 10), wall_clock_ns=clock)
    outcome = smaller.save("r4", header(4), frame(0), OVERLAY, "fail")

    assert outcome.ok and outcome.evicted_records == 2
    stems = sorted({path.name.split(".")[0] for path in files_on_disk(folder)})
    assert stems == ["r2", "r3", "r4"]


def test_startup_scan_indexes_thousands_of_records(tmp_path):
    day_dir = tmp_path / "20240102"
    day_dir.mkdir()
    for index in range(2000):
        (day_dir / f"{index:06d}.png").write_bytes(b"p" * 10)
        (day_dir / f"{index:06d}.json").write_bytes(b"{}")
    status = Archive(ArchiveSettings(tmp_path, 10**9)).status()
    assert (status.records, status.bytes_used) == (2000, 2000 * 12)


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """chmod 0o500; as root (chmod does not stop root) the immutable attribute, where chattr works."""
    folder.chmod(0o500)
    immutable = False
    try:
        if os.access(folder, os.W_OK) and shutil.which("chattr"):
            immutable = subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
        if os.access(folder, os.W_OK):
            pytest.skip("running as root without chattr: the folder cannot be made read-only")
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o700)


def test_read_only_folder_gives_an_outcome_not_an_exception(tmp_path):
    folder = tmp_path / "archive"
    folder.mkdir()
    with read_only(folder):
        archive = Archive(ArchiveSettings(folder, 10**7), wall_clock_ns=Clock())
        assert not archive.status().writable
        outcome = archive.save("r1", header(1), frame(), OVERLAY, "fail")
    assert not outcome.ok and str(folder) in outcome.error
    assert ("Permission denied" in outcome.error) or ("Operation not permitted" in outcome.error)
    status = archive.status()
    assert status.failures == 1 and not status.writable
    assert status.last_error == outcome.error and status.last_error_wall_ns > 0
    assert files_on_disk(folder) == []


def test_folder_under_a_file_gives_an_outcome_not_an_exception(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the archive folder's parent should be")
    archive = Archive(ArchiveSettings(blocker / "archive", 10**7), wall_clock_ns=Clock())
    status = archive.status()
    assert not status.writable and "Not a directory" in status.last_error

    outcome = archive.save("r1", header(1), frame(), OVERLAY, "error")

    assert not outcome.ok and str(blocker) in outcome.error
    assert archive.status().failures == 1


def test_vanished_folder_is_reported_and_not_recreated(tmp_path):
    folder = tmp_path / "usb-disk"
    archive = Archive(ArchiveSettings(folder, 10**7), wall_clock_ns=Clock())
    assert archive.save("r1", header(1), frame(), OVERLAY, "fail").ok
    shutil.rmtree(folder)

    outcome = archive.save("r2", header(2), frame(), OVERLAY, "fail")

    assert not outcome.ok and "missing" in outcome.error
    assert not folder.exists()
    assert not archive.status().writable


def test_disk_full_is_reported_and_inspection_goes_on(tmp_path, monkeypatch):
    archive = Archive(ArchiveSettings(tmp_path, 10**7), wall_clock_ns=Clock())

    def full_after_the_frame(path, data, **kwargs):
        if Path(path).suffix != ".png":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return write_bytes_atomic(path, data, **kwargs)

    monkeypatch.setattr(archive_module, "write_bytes_atomic", full_after_the_frame)
    outcome = archive.save("r1", header(1), frame(), OVERLAY, "fail")

    assert not outcome.ok and "No space left on device" in outcome.error
    assert files_on_disk(tmp_path) == []  # the frame already written is taken back
    status = archive.status()
    assert (status.failures, status.records, status.bytes_used, status.writable) == (1, 0, 0, False)
    assert "No space left on device" in status.last_error

    monkeypatch.undo()  # space again: the next part is archived
    assert archive.save("r2", header(2), frame(), OVERLAY, "fail").ok
    status = archive.status()
    assert status.writable and status.records == 1 and status.failures == 1


def test_status_from_another_thread_stays_consistent(tmp_path):
    probe = Archive(ArchiveSettings(tmp_path / "probe", 10**7), wall_clock_ns=Clock())
    size = probe.save("p", header(0), frame(), OVERLAY, "fail").bytes_written
    quota = 3 * size
    archive = Archive(ArchiveSettings(tmp_path / "archive", quota), wall_clock_ns=Clock())
    seen, done = [], threading.Event()

    def watch():
        while not done.is_set():
            seen.append(archive.status())
            done.wait(0.001)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for seq in range(30):
            archive.save(f"r{seq}", header(seq), frame(), OVERLAY, "fail")
    finally:
        done.set()
        watcher.join()
    assert seen
    assert all(0 <= status.bytes_used <= quota and 0 <= status.records <= 3 for status in seen)
    # records and bytes come from the same moment: a torn read would be a whole record apart
    assert all(abs(status.bytes_used - status.records * size) <= 8 * status.records for status in seen)


@pytest.mark.parametrize("record_id", ["../escape", "a.b", "", "with space"])
def test_record_id_that_is_not_a_plain_name_is_refused(tmp_path, record_id):
    archive = Archive(ArchiveSettings(tmp_path, 10**7), wall_clock_ns=Clock())
    with pytest.raises(ValueError, match="record id"):
        archive.save(record_id, header(1), frame(), OVERLAY, "fail")
    assert files_on_disk(tmp_path) == []
