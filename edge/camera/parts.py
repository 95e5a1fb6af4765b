"""Drawn parts: a machined washer on a brushed background, and the defects drawn on it.

The generated line (``edge/camera/generated.py``) and the synthetic MVTec-layout data set
(``export/synthetic.py``) both draw with these functions, so a model trained on the synthetic set
sees the same kind of part on the generated line. numpy and OpenCV only; images are BGR uint8,
as OpenCV draws and writes them. For a given generator state the output is fixed: the synthetic
data set's images are a regression guard on it (tests/test_generated_line.py).
"""

from __future__ import annotations

import cv2
import numpy as np

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
