"""A small, deterministic MVTec-layout image set drawn from scratch (no downloads, no licences).

Used by the demo and by end-to-end tests: a machined washer on a brushed background, with
scratches and dark spots as defects and exact ground-truth masks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


@dataclass(frozen=True)
class SyntheticSpec:
    category: str = "washer"
    size_px: int = 128
    n_train: int = 12
    n_test_good: int = 6
    n_test_defect: int = 6  # per defect type
    seed: int = 0


DEFECT_TYPES = ("scratch", "spot")


def draw_part(rng: np.random.Generator, size_px: int) -> np.ndarray:
    """A good part: a ring with a bore, slightly shifted and lit differently each time (BGR uint8)."""
    base = rng.normal(70, 4, (size_px, size_px)).astype(np.float32)
    base += np.linspace(-6, 6, size_px, dtype=np.float32)[None, :]  # brushed gradient
    image = np.repeat(base[..., None], 3, axis=2)
    centre = (int(size_px / 2 + rng.integers(-3, 4)), int(size_px / 2 + rng.integers(-3, 4)))
    gain = float(rng.uniform(0.9, 1.1))
    cv2.circle(image, centre, int(size_px * 0.38), (150 * gain, 160 * gain, 170 * gain), -1, cv2.LINE_AA)
    cv2.circle(image, centre, int(size_px * 0.15), (40, 40, 45), -1, cv2.LINE_AA)
    cv2.circle(image, centre, int(size_px * 0.30), (120 * gain, 130 * gain, 140 * gain), 2, cv2.LINE_AA)
    image += rng.normal(0, 3, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def add_defect(rng: np.random.Generator, image: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Draw one defect on the part; returns the image and its 0/255 mask."""
    size_px = image.shape[0]
    mask = np.zeros(image.shape[:2], np.uint8)
    angle = rng.uniform(0, 2 * np.pi)
    radius = rng.uniform(0.2, 0.34) * size_px
    x, y = (int(size_px / 2 + radius * np.cos(angle)), int(size_px / 2 + radius * np.sin(angle)))
    if kind == "scratch":
        dx, dy = (int(rng.integers(-12, 13)), int(rng.integers(-12, 13)))
        cv2.line(mask, (x - dx, y - dy), (x + dx, y + dy), 255, 3)
        colour = (230, 230, 235)
    elif kind == "spot":
        cv2.circle(mask, (x, y), int(rng.integers(4, 8)), 255, -1)
        colour = (20, 30, 60)
    else:
        raise ValueError(f"unknown defect type {kind!r}; choose one of {DEFECT_TYPES}")
    out = image.copy()
    out[mask > 0] = colour
    return out, mask


def write_synthetic_dataset(root: Path, spec: SyntheticSpec = SyntheticSpec()) -> Path:
    """Write ``<root>/<category>/{train,test,ground_truth}`` and return the category folder."""
    rng = np.random.default_rng(spec.seed)
    folder = Path(root) / spec.category
    for index in range(spec.n_train):
        _write(folder / "train" / "good" / f"{index:03d}.png", draw_part(rng, spec.size_px))
    for index in range(spec.n_test_good):
        _write(folder / "test" / "good" / f"{index:03d}.png", draw_part(rng, spec.size_px))
    for kind in DEFECT_TYPES:
        for index in range(spec.n_test_defect):
            image, mask = add_defect(rng, draw_part(rng, spec.size_px), kind)
            _write(folder / "test" / kind / f"{index:03d}.png", image)
            _write(folder / "ground_truth" / kind / f"{index:03d}_mask.png", mask)
    return folder


def _write(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"could not write {path}: check the folder is writable and the disk has space")
