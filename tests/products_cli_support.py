"""Real image folders and small real models for the enroll / calibrate command tests.

A "part" is a 48×48 RGB image: an orange disk (the cookie) on a dark background with camera-like
noise. The model is tests/contract_models.py's brightness model (32 px input) with patch_features:
its map is the grey level, its patch features are the pixels' RGB values, so a bright scratch
raises both the model's map and the memory's distance.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from edge.cli import main
from tests.contract_models import brightness_model, save

SIZE_PX = 48
MODEL_PX = 32


def good_part(rng: np.random.Generator, width_px: int = SIZE_PX) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE_PX, 0:width_px]
    image = np.full((SIZE_PX, width_px, 3), 40.0)
    image[(yy - 24) ** 2 + (xx - 24) ** 2 < 15**2] = (150, 110, 70)
    image += rng.normal(0.0, 6.0, image.shape)
    return image.clip(0, 255).astype(np.uint8)


def odd_part(rng: np.random.Generator) -> np.ndarray:
    """Not this product at all: a bright cyan plate."""
    image = rng.normal(0.0, 6.0, (SIZE_PX, SIZE_PX, 3)) + np.array([30.0, 200.0, 230.0])
    return image.clip(0, 255).astype(np.uint8)


def scratched_part(rng: np.random.Generator, offset_px: int) -> np.ndarray:
    image = good_part(rng)
    image[14:18, 12 + offset_px : 34 + offset_px] = 235
    return image


def write_images(folder: Path, images: Sequence[np.ndarray], prefix: str = "part") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(images):
        assert cv2.imwrite(str(folder / f"{prefix}{index}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return folder


def good_folder(folder: Path, count: int, seed: int, *, odd_at: int | None = None) -> Path:
    rng = np.random.default_rng(seed)
    images = [odd_part(rng) if index == odd_at else good_part(rng) for index in range(count)]
    return write_images(folder, images)


def bad_folder(folder: Path, count: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    return write_images(folder, [scratched_part(rng, index) for index in range(count)], prefix="scratch")


def model_file(folder: Path, *, size_px: int = MODEL_PX, patch_features: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    name = f"brightness{size_px}{'-features' if patch_features else ''}.onnx"
    return save(brightness_model(size_px, patch_features=patch_features), folder / name)


def run_cli(capsys, *argv: object) -> tuple[int, str, str]:  # noqa: ANN001
    """``inp-edge ARGV`` in this process: (exit status, stdout, stderr)."""
    capsys.readouterr()
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err
