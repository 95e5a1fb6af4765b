"""A small, deterministic MVTec-layout image set drawn from scratch (no downloads, no licences).

Used by the demo and by end-to-end tests: a machined washer on a brushed background, with
scratches and dark spots as defects and exact ground-truth masks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

# The drawing lives on the edge side (the generated line draws the same parts); re-exported here.
from edge.camera.parts import DEFECT_TYPES, add_defect, draw_part

__all__ = ["DEFECT_TYPES", "SyntheticSpec", "add_defect", "draw_part", "write_synthetic_dataset"]


@dataclass(frozen=True)
class SyntheticSpec:
    category: str = "washer"
    size_px: int = 128
    n_train: int = 12
    n_test_good: int = 6
    n_test_defect: int = 6  # per defect type
    seed: int = 0


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
