"""A generated line: drawn washers, some with a defect, with their ground truth in ``Frame.meta``.

It needs no camera and no images, so the whole station (model, decision, publishing) can run and be
measured anywhere, and a run can count escapes (defects passed) and false rejects (good parts
failed) from the labels.

Which parts are defective (the rule, deterministic for a seed): parts come in blocks of
``BLOCK_PARTS`` (20); in every block exactly ``floor(20 * defect_fraction + 0.5)`` parts are
defective (0.1 → 2, 0.025 → 1, 0.02 → 0), at positions chosen by a shuffle seeded by (seed, block).
So over any whole number of blocks the defect fraction is exact to that rounding, and within a block
the defects fall at random. Defect types alternate through ``DEFECT_TYPES`` in the order the defects
come. Each part is drawn from its own generator seeded by (seed, part), so part ``i`` looks the same
however the line got there.

Frames are RGB (the drawing is BGR, as OpenCV draws); ``frame_id`` and ``meta["part"]`` are the part
index from 0. ``meta["defect_box"]`` is ``[x0, y0, x1, y1]`` in frame pixels around the defect's
mask (x0, y0 inclusive; x1, y1 exclusive), ``None`` for a good part.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import cv2
import numpy as np

from edge.camera.frame import SourceExhausted
from edge.camera.pacing import PacedSource, describe_rate, is_number
from edge.camera.parts import DEFECT_TYPES, add_defect, draw_part
from edge.config_schema import KEYS_BY_PATH
from edge.errors import ConfigError

BLOCK_PARTS = 20
_SIZE_KEY = KEYS_BY_PATH["source.size_px"]  # the station config's limits are the line's
MIN_SIZE_PX, MAX_SIZE_PX = int(_SIZE_KEY.low), int(_SIZE_KEY.high)
_DRAW_STREAM = 0  # first word after the seed: which random stream (drawing or defect schedule)
_SCHEDULE_STREAM = 1


def defects_per_block(defect_fraction: float) -> int:
    """How many of every ``BLOCK_PARTS`` parts are defective (rounded half up)."""
    return int(math.floor(BLOCK_PARTS * defect_fraction + 0.5))


@lru_cache(maxsize=64)
def _block_defect_positions(seed: int, block: int, n_defects: int) -> tuple[int, ...]:
    rng = np.random.default_rng([seed, _SCHEDULE_STREAM, block])
    return tuple(sorted(int(p) for p in rng.permutation(BLOCK_PARTS)[:n_defects]))


def part_defect_type(seed: int, part: int, defect_fraction: float) -> str:
    """``"good"`` or the defect type of part ``part`` under the module's rule."""
    n_defects = defects_per_block(defect_fraction)
    block, position = divmod(part, BLOCK_PARTS)
    positions = _block_defect_positions(seed, block, n_defects)
    if position not in positions:
        return "good"
    defect_number = block * n_defects + positions.index(position)
    return DEFECT_TYPES[defect_number % len(DEFECT_TYPES)]


def mask_box(mask: np.ndarray) -> list[int] | None:
    """``[x0, y0, x1, y1]`` around the mask's nonzero pixels (x1, y1 exclusive); None when empty."""
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return None
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]


def draw_line_part(
    seed: int, part: int, size_px: int, defect_type: str
) -> tuple[np.ndarray, list[int] | None]:
    """Part ``part`` of the line as RGB, with its defect box (None for a good part)."""
    rng = np.random.default_rng([seed, _DRAW_STREAM, part])
    image = draw_part(rng, size_px)
    box = None
    if defect_type != "good":
        image, mask = add_defect(rng, image, defect_type)
        box = mask_box(mask)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), box


class GeneratedLine(PacedSource):
    """Drawn washers on a line; ``parts`` of them (0: endless), ``defect_fraction`` defective."""

    def __init__(
        self,
        parts: int = 0,
        defect_fraction: float = 0.1,
        size_px: int = 128,
        seed: int = 0,
        rate_pps: float = 0,
    ) -> None:
        _check_settings(parts, defect_fraction, size_px, seed)
        super().__init__(rate_pps)
        self.parts = int(parts)
        self.defect_fraction = float(defect_fraction)
        self.size_px = int(size_px)
        self.seed = int(seed)
        self._next_part = 0
        count = f"{self.parts} parts" if self.parts else "endless"
        self.name = (
            f"generated washers {self.size_px}px ({count}, {defects_per_block(self.defect_fraction)}"
            f"/{BLOCK_PARTS} defective, seed {self.seed}, {describe_rate(self.rate_pps)})"
        )

    def _produce(self) -> tuple[np.ndarray, dict[str, Any]]:
        part = self._next_part
        if self.parts and part >= self.parts:
            raise SourceExhausted(f"{self.name}: all {self.parts} parts delivered")
        defect_type = part_defect_type(self.seed, part, self.defect_fraction)
        image, box = draw_line_part(self.seed, part, self.size_px, defect_type)
        self._next_part += 1
        meta = {
            "source": "generated",
            "part": part,
            "label": "good" if defect_type == "good" else "defect",
            "defect_type": defect_type,
            "defect_box": box,
        }
        return image, meta


def _check_settings(parts: int, defect_fraction: float, size_px: int, seed: int) -> None:
    if not is_number(parts, whole=True) or parts < 0:
        raise ConfigError(f"generated line: parts {parts!r} is not a count", fix="give 0 (endless) or more")
    if not is_number(defect_fraction) or not 0.0 <= defect_fraction <= 1.0:
        raise ConfigError(
            f"generated line: defect_fraction {defect_fraction!r} is outside 0..1",
            fix="give the share of defective parts, e.g. 0.1",
        )
    if not is_number(size_px, whole=True) or not MIN_SIZE_PX <= size_px <= MAX_SIZE_PX:
        raise ConfigError(
            f"generated line: size_px {size_px!r} is outside {MIN_SIZE_PX}..{MAX_SIZE_PX}",
            fix="give the image side in pixels, e.g. 128",
        )
    if not is_number(seed, whole=True) or seed < 0:
        raise ConfigError(f"generated line: seed {seed!r} is not a whole number >= 0", fix="give e.g. 0")
