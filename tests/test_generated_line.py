"""The generated line: washers drawn for a seed, defects by the block rule, and the drawing kept byte-identical."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.camera.frame import SourceExhausted
from edge.camera.generated import BLOCK_PARTS, GeneratedLine, defects_per_block, draw_line_part
from edge.camera.parts import DEFECT_TYPES
from edge.errors import ConfigError
from export.synthetic import add_defect, draw_part, write_synthetic_dataset
from tests.source_support import grab_all, grab_n


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
