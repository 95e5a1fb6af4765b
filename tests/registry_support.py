"""Products for the registry tests: valid values, with or without a few-shot memory."""

from __future__ import annotations

import numpy as np

from edge.decision import Thresholds
from edge.products.product import CalibrationRecord, MapNorm, Product, ScoreSummary

MODEL_SHA = "5e" * 32
OTHER_SHA = "a7" * 32


def make_product(
    name: str = "cookie",
    *,
    memory: np.ndarray | None = None,
    image: float = 1.5,
    marker: float = 0.0,
    model_sha256: str = MODEL_SHA,
) -> Product:
    """A product as enrollment would make it; fusion "fused" when ``memory`` is given, else "inp"."""
    tokens = 0 if memory is None else int(memory.shape[0])
    return Product(
        name=name,
        model_sha256=model_sha256,
        model_id="bottle-effl0-20261122",
        fusion="inp" if memory is None else "fused",
        inp_norm=MapNorm(center=0.12, scale=0.05),
        memory_norm=None if memory is None else MapNorm(center=0.3, scale=0.08),
        thresholds=Thresholds(
            image=image, pixel=image + 0.5, min_region_area_px=25.0, center=0.0, source="enrollment"
        ),
        good_scores=ScoreSummary.of([0.1, 0.4, 0.2, 0.35, 0.3]),
        enrollment={
            "shots": 8,
            "source": "camera",
            "flagged": [],
            "memory_tokens": tokens,
            "max_memory_tokens": 4096,
            "enrolled_at": "2026-11-30T10:00:00Z",
            "marker": marker,
        },
        calibrations=(
            CalibrationRecord("2026-11-30T10:00:00Z", "enrollment", image, 8, 0, None, None, "enrolled"),
        ),
        memory=memory,
    )
