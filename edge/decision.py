"""Pure decisions: an inference and the thresholds in, a verdict with defect regions out.

- The part fails when its raw image score is above the image threshold (``raw > image``).
- Defect regions are the connected components (8-connected) of the anomaly map above the pixel
  threshold, inside the part of the model input that shows the region of interest, whose area in
  frame pixels is at least ``min_region_area_px``. Each has its box in frame coordinates (through the
  centre crop, the resize and the ROI), its area and its peak map value; the ``max_regions`` with
  the highest peaks are kept, largest peak first. Regions are reported for every part; only the image
  score decides pass or fail.
- The normalised ``score`` puts a typical good part (``center``, the median good score) at 0 and the
  threshold at 1, so a PLC or an operator reads "above 1 fails" whatever the model.

No I/O here: the tables in tests/test_decision.py are the specification.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np

from edge.model.contract import ScoreStats
from edge.model.preprocess import Box, Geometry

PASS, FAIL, ERROR = "pass", "fail", "error"
VERDICTS = (PASS, FAIL, ERROR)
# Reasons of an ERROR verdict (a free-text detail may follow after ": ").
OVERRUN, LATE, EXCEPTION, CAMERA_LOST, STALE = "overrun", "late", "exception", "camera-lost", "stale-frame"
MISSED_TRIGGER = "missed-trigger"


def reason_kind(reason: str) -> str:
    """The kind of an ERROR reason without its free-text detail ("late: 310 ms > ..." → "late")."""
    return reason.split(":", 1)[0].strip() or "unknown"


MAX_REGIONS = 16

# Default thresholds when the station config sets none, from the artifact's training good-part
# statistics (in-sample, so held-out good parts score a little higher): the largest training score
# plus DEFAULT_STD_MARGIN standard deviations. Chosen on the generated line of the demo (docs/benchmarks.md):
# no escapes and false rejects within the 5 % target.
DEFAULT_STD_MARGIN = 3.0


@dataclass(frozen=True)
class Thresholds:
    """What decides a part; all values in the model's raw score / map units."""

    image: float  # raw image score above which the part fails
    pixel: float  # raw map value above which a pixel belongs to a defect region
    min_region_area_px: float = 0.0  # frame px²; smaller regions are not reported
    center: float = 0.0  # raw score of a typical good part (normalised score 0)
    source: str = "config"  # where the values came from, stated in the log and every verdict

    def normalise(self, raw_score: float) -> float:
        """0 at ``center``, 1 at the image threshold."""
        span = self.image - self.center
        return (raw_score - self.center) / span if span > 0 else math.inf


def default_thresholds(
    stats: ScoreStats,
    model_id: str,
    *,
    std_margin: float = DEFAULT_STD_MARGIN,
    min_region_area_px: float = 0.0,
) -> Thresholds:
    """Thresholds from the training good-part statistics of the artifact (no config values)."""
    image = stats.max + std_margin * stats.std
    source = (
        f"default from model {model_id}: max + {std_margin:g} std of {stats.n} training good scores "
        f"({stats.max:.4f} + {std_margin:g} x {stats.std:.4f})"
    )
    return Thresholds(
        image=image, pixel=image, min_region_area_px=min_region_area_px, center=stats.p50, source=source
    )


@dataclass(frozen=True)
class Region:
    """One defect region, in frame pixels."""

    box: Box
    area_px: float  # frame px² (model-input pixels × the frame area each covers)
    peak: float  # the highest raw map value in the region


@dataclass(frozen=True)
class Decision:
    verdict: str  # pass | fail
    score: float  # normalised: 0 typical good, 1 the threshold
    raw_score: float
    regions: tuple[Region, ...]


def decide(
    raw_score: float,
    anomaly_map: np.ndarray,
    geometry: Geometry,
    thresholds: Thresholds,
    max_regions: int = MAX_REGIONS,
) -> Decision:
    """Pass / fail by the image score, and the defect regions of the map (pure)."""
    verdict = FAIL if raw_score > thresholds.image or not math.isfinite(raw_score) else PASS
    regions = find_regions(
        anomaly_map, geometry, thresholds.pixel, thresholds.min_region_area_px, max_regions
    )
    return Decision(verdict, thresholds.normalise(raw_score), raw_score, regions)


def find_regions(
    anomaly_map: np.ndarray, geometry: Geometry, pixel_threshold: float, min_area_px: float, max_regions: int
) -> tuple[Region, ...]:
    """Connected components of ``anomaly_map > pixel_threshold`` inside the valid box, in frame pixels."""
    u0, v0, u1, v1 = geometry.valid_box()
    if u1 <= u0 or v1 <= v0:
        return ()
    above = np.zeros(anomaly_map.shape, np.uint8)
    np.greater(anomaly_map[v0:v1, u0:u1], pixel_threshold, out=above[v0:v1, u0:u1], casting="unsafe")
    count, labels, stats, _ = cv2.connectedComponentsWithStats(above, connectivity=8)
    area_per_px = geometry.frame_px_per_input_px()
    found = []
    for label in range(1, count):
        left, top, width, height, pixels = (int(value) for value in stats[label])
        area = pixels * area_per_px
        if area < min_area_px:
            continue
        window = (slice(top, top + height), slice(left, left + width))  # the component's box only
        peak = float(anomaly_map[window][labels[window] == label].max())
        found.append(Region(geometry.box_to_frame(left, top, left + width, top + height), area, peak))
    found.sort(key=lambda region: region.peak, reverse=True)
    return tuple(found[:max_regions])


@dataclass(frozen=True)
class Verdict:
    """The outcome for one part, as the pipeline publishes it (with seq and station added)."""

    frame_id: int
    verdict: str  # pass | fail | error
    t_capture_ns: int  # monotonic
    wall_time_ns: int  # wall clock at capture
    reason: str = ""  # why an ERROR: overrun | late | exception: ... | camera-lost | stale-frame
    score: float | None = None  # normalised (None when the part was never scored)
    raw_score: float | None = None
    threshold: float | None = None  # the raw image threshold used
    threshold_source: str = ""
    regions: tuple[Region, ...] = ()
    latency_ms: Mapping[str, float] = field(default_factory=dict)  # by stage
    frame_meta: Mapping[str, Any] = field(default_factory=dict)
    product: str | None = None  # the product whose thresholds decided it; None: the station's own
    product_version: int | None = None


def error_verdict(
    frame_id: int,
    t_capture_ns: int,
    wall_time_ns: int,
    reason: str,
    frame_meta: Mapping[str, Any] | None = None,
) -> Verdict:
    return Verdict(
        frame_id, ERROR, t_capture_ns, wall_time_ns, reason=reason, frame_meta=dict(frame_meta or {})
    )


def late(verdict: Verdict, waited_ms: float, deadline_ms: float) -> Verdict:
    """The fail-safe: a verdict past the deadline becomes an ERROR "late" (never a late pass)."""
    detail = f"{LATE}: {waited_ms:.1f} ms > deadline {deadline_ms:g} ms (would have been {verdict.verdict})"
    return replace(verdict, verdict=ERROR, reason=detail)


def is_late(t_capture_ns: int, now_ns: int, deadline_ms: float) -> bool:
    """Whether a verdict at ``now_ns`` (monotonic) misses the deadline after capture (pure)."""
    return deadline_ms > 0 and (now_ns - t_capture_ns) / 1e6 > deadline_ms
