"""Replay of a folder of images or a video file: order, loops, labels, conversions and unreadable input."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.camera.replay import FolderReplay, VideoReplay
from edge.errors import SourceError
from export.synthetic import SyntheticSpec, write_synthetic_dataset
from tests.source_support import flat_bgr, grab_all, grab_n, write_png, write_video


def test_folder_replay_plays_images_in_natural_name_order(tmp_path: Path) -> None:
    for name, value in [("part10.png", 10), ("part2.png", 2), ("part1.png", 1)]:
        write_png(tmp_path / name, flat_bgr(value))
    (tmp_path / "notes.txt").write_text("not an image")
    frames = grab_all(FolderReplay(tmp_path))
    assert [f.meta["file"] for f in frames] == ["part1.png", "part2.png", "part10.png"]
    assert [f.meta["label"] for f in frames] == [None, None, None]
    assert [int(f.image[0, 0, 2]) for f in frames] == [1, 2, 10]  # BGR blue is RGB's last channel
    assert all(f.meta["source"] == "replay" for f in frames)


def test_folder_replay_loop_wraps_around(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png", flat_bgr(1))
    write_png(tmp_path / "b.png", flat_bgr(2))
    frames = grab_n(FolderReplay(tmp_path, loop=True), 5)
    assert [f.meta["file"] for f in frames] == ["a.png", "b.png", "a.png", "b.png", "a.png"]
    assert [f.meta["pass"] for f in frames] == [0, 0, 1, 1, 2]
    assert [f.frame_id for f in frames] == [0, 1, 2, 3, 4]


def test_folder_replay_labels_frames_by_subfolder_of_an_mvtec_test_folder(tmp_path: Path) -> None:
    spec = SyntheticSpec(size_px=32, n_train=1, n_test_good=2, n_test_defect=3)
    test_folder = write_synthetic_dataset(tmp_path, spec) / "test"
    frames = grab_all(FolderReplay(test_folder))
    labels = [f.meta["label"] for f in frames]
    assert labels == ["good"] * 2 + ["scratch"] * 3 + ["spot"] * 3
    assert frames[2].meta["file"] == "scratch/000.png"
    on_disk = cv2.imread(str(test_folder / "scratch" / "000.png"))
    assert np.array_equal(frames[2].image, cv2.cvtColor(on_disk, cv2.COLOR_BGR2RGB))


def test_folder_replay_keeps_mono_images_mono_and_makes_16_bit_8_bit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mono = np.arange(64, dtype=np.uint8).reshape(8, 8)
    write_png(tmp_path / "a_mono.png", mono)
    write_png(tmp_path / "b_deep.png", mono.astype(np.uint16) * 256 + 255)
    with caplog.at_level(logging.WARNING, logger="edge.camera.replay"):
        frames = grab_all(FolderReplay(tmp_path))
    assert [f.image.shape for f in frames] == [(8, 8), (8, 8)]
    assert all(f.image.dtype == np.uint8 for f in frames)
    assert np.array_equal(frames[0].image, mono) and np.array_equal(frames[1].image, mono)
    assert "16-bit" in caplog.text and "b_deep.png" in caplog.text


def test_corrupt_file_is_skipped_counted_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_png(tmp_path / "a.png", flat_bgr(1))
    (tmp_path / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    write_png(tmp_path / "c.png", flat_bgr(3))
    source = FolderReplay(tmp_path)
    with caplog.at_level(logging.WARNING, logger="edge.camera.replay"):
        frames = grab_all(source)
    assert [f.meta["file"] for f in frames] == ["a.png", "c.png"]
    assert [f.frame_id for f in frames] == [0, 1]
    assert source.skipped == 1
    assert "b.png" in caplog.text


def test_folder_of_only_corrupt_files_is_a_source_error_even_when_looping(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"nope")
    (tmp_path / "b.jpg").write_bytes(b"nope")
    with FolderReplay(tmp_path, loop=True) as source, pytest.raises(SourceError, match=str(tmp_path)):
        source.grab(timeout_s=0.1)


@pytest.mark.parametrize("make", ["missing", "empty", "only_text"])
def test_empty_or_missing_folder_is_a_source_error_naming_it(tmp_path: Path, make: str) -> None:
    folder = tmp_path / "parts"
    if make != "missing":
        (folder / "good").mkdir(parents=True)
    if make == "only_text":
        (folder / "good" / "readme.txt").write_text("x")
    with pytest.raises(SourceError) as caught:
        FolderReplay(folder)
    assert str(folder) in caught.value.message and caught.value.fix


def test_video_replay_reads_every_frame_as_rgb(tmp_path: Path) -> None:
    video = write_video(tmp_path / "line.avi", 5)
    frames = grab_all(VideoReplay(video))
    assert [f.meta["position"] for f in frames] == [0, 1, 2, 3, 4]
    assert all(f.meta["source"] == "video" and f.meta["file"] == str(video) for f in frames)
    blue = [float(f.image[..., 2].mean()) for f in frames]
    red = [float(f.image[..., 0].mean()) for f in frames]
    assert blue == sorted(blue) and blue[-1] > 150 and max(red) < 30  # lossy MJPG, colours kept


def test_video_replay_loops_from_the_start(tmp_path: Path) -> None:
    video = write_video(tmp_path / "line.avi", 3)
    frames = grab_n(VideoReplay(video, loop=True), 7)
    assert [f.meta["position"] for f in frames] == [0, 1, 2, 0, 1, 2, 0]
    assert [f.frame_id for f in frames] == list(range(7))
    assert np.array_equal(frames[0].image, frames[3].image)


def test_unreadable_video_is_a_source_error_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "broken.avi"
    bad.write_text("this is not a video")
    source = VideoReplay(bad)
    with pytest.raises(SourceError, match="broken.avi"):
        source.__enter__()
    assert not source.connected()
    with pytest.raises(SourceError, match="missing.avi"):
        VideoReplay(tmp_path / "missing.avi")
