"""The decision rules as tables: verdicts, regions in frame coordinates, defaults, the fail-safe."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge.decision import (
    ERROR,
    FAIL,
    PASS,
    Thresholds,
    Verdict,
    decide,
    default_thresholds,
    is_late,
    late,
)
from edge.model.contract import ScoreStats
from edge.model.preprocess import Geometry, Roi, preprocess_frame

IDENTITY = Geometry(Roi(0, 0, 32, 32), 1.0, 1.0, 0.0, 0.0, 0, 0, 32)
THRESHOLDS = Thresholds(image=0.5, pixel=0.5, min_region_area_px=0.0, center=0.1)


@pytest.mark.parametrize(
    ("raw_score", "verdict", "score"),
    [
        (0.1, PASS, 0.0),
        (0.5, PASS, 1.0),
        (0.5001, FAIL, 1.00025),
        (0.9, FAIL, 2.0),
        (math.nan, FAIL, math.nan),
    ],
)
def test_image_threshold_decides_and_the_score_is_one_at_the_threshold(
    raw_score: float, verdict: str, score: float
) -> None:
    decision = decide(raw_score, np.zeros((32, 32), np.float32), IDENTITY, THRESHOLDS)
    assert decision.verdict == verdict
    assert (math.isnan(decision.score) and math.isnan(score)) or decision.score == pytest.approx(score)


def blobs() -> np.ndarray:
    anomaly = np.zeros((32, 32), np.float32)
    anomaly[2:4, 2:4] = 0.6  # 4 px, peak 0.6
    anomaly[10:20, 20:30] = 0.7  # 100 px
    anomaly[15, 25] = 0.9  # peak of the big one
    anomaly[30, 30] = 0.55  # 1 px
    return anomaly


@pytest.mark.parametrize(
    ("min_area_px", "pixel", "expected_areas"),
    [(0, 0.5, [100, 4, 1]), (4, 0.5, [100, 4]), (5, 0.5, [100]), (0, 0.65, [100]), (0, 0.95, [])],
)
def test_regions_are_components_above_the_pixel_threshold_with_a_minimum_area(
    min_area_px: float, pixel: float, expected_areas: list[int]
) -> None:
    thresholds = Thresholds(image=0.5, pixel=pixel, min_region_area_px=min_area_px)
    regions = decide(0.2, blobs(), IDENTITY, thresholds).regions
    assert [round(region.area_px) for region in regions] == expected_areas  # largest peak first


def test_region_boxes_and_areas_are_in_frame_pixels_through_roi_and_resize() -> None:
    frame = np.zeros((400, 600, 3), np.uint8)
    roi = Roi(100, 50, 320, 320)  # 320 px region → 64 px resize → 64 px input: 5 frame px per input px
    _, geometry = preprocess_frame(frame, resize_px=64, crop_px=64, roi=roi)
    anomaly = np.zeros((64, 64), np.float32)
    anomaly[10:14, 20:30] = 1.0
    (region,) = decide(1.0, anomaly, geometry, Thresholds(image=0.5, pixel=0.5)).regions
    box = region.box
    assert (box.x0, box.y0, box.x1, box.y1) == pytest.approx(
        (100 + 20 * 5, 50 + 10 * 5, 100 + 30 * 5, 50 + 14 * 5)
    )
    assert region.area_px == pytest.approx(40 * 25) and region.peak == 1.0


def test_regions_in_letterbox_padding_are_ignored() -> None:
    frame = np.zeros((100, 200, 3), np.uint8)
    _, geometry = preprocess_frame(frame, resize_px=64, crop_px=64, fit="letterbox")
    anomaly = np.zeros((64, 64), np.float32)
    anomaly[0:8, :] = 1.0  # the padding band above the image
    anomaly[30:34, 30:34] = 1.0  # inside the image
    regions = decide(1.0, anomaly, geometry, Thresholds(image=0.5, pixel=0.5)).regions
    assert len(regions) == 1 and regions[0].box.y0 >= 0


def test_default_thresholds_come_from_the_good_part_statistics_and_say_so() -> None:
    stats = ScoreStats(
        n=60, mean=0.47, std=0.02, min=0.43, max=0.51, p50=0.47, p90=0.49, p95=0.5, p99=0.509, source="x"
    )
    thresholds = default_thresholds(stats, "bottle-m1")
    assert thresholds.image == pytest.approx(0.51 + 3 * 0.02)
    assert thresholds.pixel == thresholds.image and thresholds.center == 0.47
    assert "bottle-m1" in thresholds.source and "60 training good scores" in thresholds.source


@pytest.mark.parametrize(
    ("waited_ms", "deadline_ms", "expected"), [(99.9, 100, False), (100.1, 100, True), (5000, 0, False)]
)
def test_lateness_against_the_deadline(waited_ms: float, deadline_ms: float, expected: bool) -> None:
    assert is_late(0, int(waited_ms * 1e6), deadline_ms) is expected


@pytest.mark.parametrize("original", [PASS, FAIL])
def test_a_late_verdict_becomes_an_error_never_a_late_pass(original: str) -> None:
    verdict = Verdict(frame_id=7, verdict=original, t_capture_ns=0, wall_time_ns=0, score=0.2)
    result = late(verdict, 130.0, 100.0)
    assert result.verdict == ERROR and result.reason.startswith("late")
    assert f"would have been {original}" in result.reason and result.frame_id == 7
