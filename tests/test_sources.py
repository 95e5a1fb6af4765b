"""Frame sources that are not a camera: the generated line, folder and video replay, pacing, the factory."""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.camera.factory import open_source, open_source_from_config
from edge.camera.frame import Frame, FrameSource, SourceExhausted
from edge.camera.generated import BLOCK_PARTS, GeneratedLine, defects_per_block, draw_line_part
from edge.camera.pacing import WaitPlan, plan_wait
from edge.camera.parts import DEFECT_TYPES
from edge.camera.replay import FolderReplay, VideoReplay
from edge.errors import ConfigError, SourceError
from export.synthetic import SyntheticSpec, add_defect, draw_part, write_synthetic_dataset


def grab_all(source: FrameSource, limit: int = 1000) -> list[Frame]:
    frames = []
    with source:
        for _ in range(limit):
            try:
                frame = source.grab(timeout_s=1.0)
            except SourceExhausted:
                return frames
            assert frame is not None
            frames.append(frame)
    raise AssertionError(f"{source.name} was not exhausted after {limit} frames")


def grab_n(source: FrameSource, n: int, timeout_s: float = 1.0) -> list[Frame]:
    frames = []
    with source:
        for _ in range(n):
            frame = source.grab(timeout_s=timeout_s)
            assert frame is not None
            frames.append(frame)
    return frames


def write_png(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)
    return path


def flat_bgr(value: int, size_px: int = 16) -> np.ndarray:
    image = np.zeros((size_px, size_px, 3), np.uint8)
    image[..., 0] = value  # blue channel carries the value, red stays 0
    return image


# ---------------------------------------------------------------- generated line


def test_generated_line_is_deterministic_for_a_seed() -> None:
    first = grab_n(GeneratedLine(seed=3, size_px=64), 25)
    again = grab_n(GeneratedLine(seed=3, size_px=64), 25)
    other = grab_n(GeneratedLine(seed=4, size_px=64), 25)
    assert [f.meta for f in first] == [f.meta for f in again]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(first, again, strict=True))
    assert not any(np.array_equal(a.image, b.image) for a, b in zip(first, other, strict=True))
    assert [f.frame_id for f in first] == list(range(25))
    assert first[0].image.shape == (64, 64, 3) and first[0].image.dtype == np.uint8


def test_generated_defect_frames_differ_from_the_good_drawing_only_inside_defect_box() -> None:
    frames = grab_n(GeneratedLine(seed=1, defect_fraction=0.5, size_px=96), 20)
    defects = [f for f in frames if f.meta["label"] == "defect"]
    assert len(defects) == 10
    assert {f.meta["defect_type"] for f in defects} == set(DEFECT_TYPES)
    for frame in frames:
        good, _ = draw_line_part(1, frame.meta["part"], 96, "good")
        changed = np.any(frame.image != good, axis=2)
        if frame.meta["label"] == "good":
            assert frame.meta["defect_type"] == "good" and frame.meta["defect_box"] is None
            assert not changed.any()
            continue
        x0, y0, x1, y1 = frame.meta["defect_box"]
        inside = np.zeros_like(changed)
        inside[y0:y1, x0:x1] = True
        assert changed[inside].any() and not changed[~inside].any()
        ys, xs = np.nonzero(changed)
        assert (xs.min(), ys.min()) == (x0, y0)  # the box is tight on the drawn defect


@pytest.mark.parametrize(
    ("defect_fraction", "per_block"), [(0.1, 2), (0.0, 0), (1.0, 20), (0.025, 1), (0.02, 0), (0.33, 7)]
)
def test_defect_fraction_follows_the_block_rule(defect_fraction: float, per_block: int) -> None:
    assert defects_per_block(defect_fraction) == per_block
    frames = grab_all(GeneratedLine(parts=100, defect_fraction=defect_fraction, size_px=32, seed=5))
    labels = [f.meta["label"] for f in frames]
    blocks = [labels[i : i + BLOCK_PARTS] for i in range(0, 100, BLOCK_PARTS)]
    assert [block.count("defect") for block in blocks] == [per_block] * 5


def test_defect_positions_change_from_block_to_block() -> None:
    frames = grab_all(GeneratedLine(parts=100, defect_fraction=0.1, size_px=32, seed=0))
    positions = {
        tuple(f.meta["part"] % BLOCK_PARTS for f in frames[i : i + 20] if f.meta["label"] == "defect")
        for i in range(0, 100, 20)
    }
    assert len(positions) > 1


def test_generated_line_is_exhausted_after_its_parts() -> None:
    source = GeneratedLine(parts=3, size_px=32)
    with source:
        ids = [source.grab(timeout_s=0.1).frame_id for _ in range(3)]
        with pytest.raises(SourceExhausted):
            source.grab(timeout_s=0.1)
    assert ids == [0, 1, 2]


@pytest.mark.parametrize(
    "settings",
    [
        {"defect_fraction": 1.5},
        {"parts": -1},
        {"size_px": 8},
        {"seed": -2},
        {"rate_pps": -1.0},
        {"parts": 2.5},
    ],
)
def test_generated_line_refuses_bad_settings_naming_them(settings: dict) -> None:
    with pytest.raises(ConfigError) as caught:
        GeneratedLine(**settings)
    assert next(iter(settings)) in str(caught.value) and caught.value.fix


# ---------------------------------------------------------------- folder replay


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


# ---------------------------------------------------------------- video replay


def write_video(path: Path, n_frames: int, size_px: int = 32) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (size_px, size_px))
    assert writer.isOpened()
    for index in range(n_frames):
        writer.write(flat_bgr(40 + 40 * index, size_px))
    writer.release()
    return path


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


# ---------------------------------------------------------------- pacing


@pytest.mark.parametrize(
    ("now_ns", "due_ns", "timeout_s", "plan"),
    [
        (100, 50, 0.0, WaitPlan(0, True)),  # overdue: now
        (100, 100, 1.0, WaitPlan(0, True)),
        (0, 10_000_000, 0.02, WaitPlan(10_000_000, True)),  # due within the timeout: sleep until due
        (0, 30_000_000, 0.02, WaitPlan(20_000_000, False)),  # not due in time: wait out the timeout
        (0, 30_000_000, 0.0, WaitPlan(0, False)),
        (0, 30_000_000, -1.0, WaitPlan(0, False)),
    ],
)
def test_wait_plan(now_ns: int, due_ns: int, timeout_s: float, plan: WaitPlan) -> None:
    assert plan_wait(now_ns, due_ns, timeout_s) == plan


def test_paced_source_delivers_on_a_fixed_schedule() -> None:
    frames = grab_n(GeneratedLine(size_px=32, rate_pps=50), 10)
    offsets_s = [(f.t_capture_ns - frames[0].t_capture_ns) / 1e9 for f in frames]
    for index, offset_s in enumerate(offsets_s):
        assert offset_s >= index / 50 - 0.002, offsets_s  # never before its due time
        assert offset_s <= index / 50 + 0.1, offsets_s  # generous: a loaded machine may be late
    walls_s = [(f.wall_time_ns - frames[0].wall_time_ns) / 1e9 for f in frames]
    assert walls_s[-1] == pytest.approx(offsets_s[-1], abs=0.01)


def test_grab_returns_none_when_the_next_part_is_not_due_and_keeps_it() -> None:
    with GeneratedLine(size_px=32, rate_pps=5) as source:
        first = source.grab(timeout_s=1.0)
        started_ns = time.monotonic_ns()
        assert source.grab(timeout_s=0.02) is None
        waited_s = (time.monotonic_ns() - started_ns) / 1e9
        second = source.grab(timeout_s=1.0)
    assert 0.02 <= waited_s < 0.19  # waited out the timeout, not the part
    assert second.frame_id == 1 and second.meta["part"] == 1
    assert (second.t_capture_ns - first.t_capture_ns) / 1e9 >= 0.2 - 0.002


def test_late_grab_is_stamped_when_it_happens() -> None:
    with GeneratedLine(size_px=32, rate_pps=100) as source:
        source.grab(timeout_s=1.0)
        time.sleep(0.05)
        asked_ns = time.monotonic_ns()
        late = source.grab(timeout_s=0.0)  # overdue parts come at once
    assert late is not None and late.t_capture_ns >= asked_ns


def test_unpaced_source_never_waits() -> None:
    with GeneratedLine(size_px=32) as source:
        frames = [source.grab(timeout_s=0.0) for _ in range(5)]
    assert all(frame is not None for frame in frames)


# ---------------------------------------------------------------- life cycle and factory


def test_source_life_cycle(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png", flat_bgr(1))
    for source in [
        GeneratedLine(size_px=32),
        FolderReplay(tmp_path),
        VideoReplay(write_video(tmp_path / "v.avi", 2)),
    ]:
        assert isinstance(source, FrameSource)
        assert not source.connected()
        with source:
            assert source.connected()
        assert not source.connected()
        source.close()  # twice is harmless
        with pytest.raises(SourceError, match="not open"):
            source.grab(timeout_s=0.0)


def test_source_names_describe_them(tmp_path: Path) -> None:
    write_png(tmp_path / "good" / "a.png", flat_bgr(1))
    assert GeneratedLine(parts=5, size_px=64, rate_pps=2).name == (
        "generated washers 64px (5 parts, 2/20 defective, seed 0, 2 pps)"
    )
    assert (
        FolderReplay(tmp_path, loop=True).name == f"replay {tmp_path} (1 images, labels good, loop, unpaced)"
    )


def test_factory_opens_each_kind(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png", flat_bgr(1))
    video = write_video(tmp_path / "clip.avi", 2)
    assert isinstance(open_source("generated", parts=2, size_px=32), GeneratedLine)
    assert isinstance(open_source("replay", path=str(tmp_path), loop=True), FolderReplay)
    assert isinstance(open_source("replay", path=video, rate_pps=5), VideoReplay)
    with pytest.raises(ConfigError, match="needs its settings"):
        open_source("genicam")


@pytest.mark.parametrize(
    ("kind", "settings", "error", "names"),
    [
        ("usb", {}, ConfigError, "usb"),
        ("generated", {"path": "x"}, ConfigError, "path"),
        ("replay", {}, ConfigError, "path"),
        ("replay", {"path": "{tmp}/nowhere"}, SourceError, "nowhere"),
        ("replay", {"path": "{tmp}/a.png"}, SourceError, "a.png"),
        ("replay", {"path": "{tmp}/notes.txt"}, SourceError, "notes.txt"),
    ],
)
def test_factory_refuses_what_it_cannot_open(
    tmp_path: Path, kind: str, settings: dict, error: type, names: str
) -> None:
    write_png(tmp_path / "a.png", flat_bgr(1))
    (tmp_path / "notes.txt").write_text("x")
    settings = {key: value.replace("{tmp}", str(tmp_path)) for key, value in settings.items()}
    with pytest.raises(error) as caught:
        open_source(kind, **settings)
    assert names in str(caught.value) and caught.value.fix


@dataclass(frozen=True)
class StationSource:  # the shape of edge.config's SourceConfig, without importing it
    kind: str = "generated"
    rate_pps: float = 0.0
    parts: int = 0
    defect_fraction: float = 0.1
    size_px: int = 128
    seed: int = 0
    path: str | None = None
    loop: bool = False


def test_factory_opens_from_a_config_value(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png", flat_bgr(1))
    generated = open_source_from_config(StationSource(parts=4, size_px=32, seed=2))
    assert isinstance(generated, GeneratedLine) and (generated.parts, generated.seed) == (4, 2)
    replay = open_source_from_config(StationSource(kind="replay", path=str(tmp_path), loop=True))
    assert isinstance(replay, FolderReplay) and replay.loop
    with pytest.raises(ConfigError, match="needs its settings"):
        open_source_from_config(StationSource(kind="genicam"))


# ---------------------------------------------------------------- the drawing moved to edge/camera/parts.py

# Regression guard ONLY: these digests were taken from export/synthetic.py before its drawing moved to
# edge/camera/parts.py (sha256 of the decoded pixels, first 16 hex digits). The drawing must stay
# byte-identical for a seed, so data sets and models made earlier stay reproducible.
SYNTHETIC_DIGESTS = {
    "train/good/000.png": "a182444cbe099c54",
    "train/good/011.png": "d25eb47610d95e0a",
    "test/good/005.png": "80c145de4abb22a6",
    "test/scratch/003.png": "3ec56f9ba50431c9",
    "test/spot/005.png": "242cbb29838e8a22",
    "ground_truth/spot/005_mask.png": "330c90794c379e0a",
}
SYNTHETIC_ALL_DIGEST = "52122642104a7b8d"  # every file of the default data set, in sorted path order
DIRECT_DIGEST = "6690f1b7dfd3ed7b"  # add_defect(rng, draw_part(rng, 96), "scratch"), rng seeded with 7


def test_synthetic_dataset_is_byte_identical_to_before_the_move(tmp_path: Path) -> None:
    folder = write_synthetic_dataset(tmp_path)
    pixels = {
        p.relative_to(folder).as_posix(): cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        for p in folder.rglob("*.png")
    }
    digests = {rel: hashlib.sha256(pixels[rel].tobytes()).hexdigest()[:16] for rel in SYNTHETIC_DIGESTS}
    assert digests == SYNTHETIC_DIGESTS
    every = hashlib.sha256()
    for rel in sorted(pixels, key=lambda rel: folder / rel):
        every.update(rel.encode())
        every.update(pixels[rel].tobytes())
    assert (len(pixels), every.hexdigest()[:16]) == (42, SYNTHETIC_ALL_DIGEST)
    rng = np.random.default_rng(7)
    image, mask = add_defect(rng, draw_part(rng, 96), "scratch")
    assert hashlib.sha256(image.tobytes() + mask.tobytes()).hexdigest()[:16] == DIRECT_DIGEST
