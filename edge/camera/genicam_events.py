"""What the GenICam source hands the pipeline besides frames: event frames, frame meta, loss counts.

An *event frame* is a ``Frame`` whose ``meta["error"]`` is an ERROR verdict reason ("<reason>:
detail") and ``meta["event"]`` the reason alone: a stale frame (its image kept), a missed trigger, a
lost camera or lost frames, an overrun (no image: ``NO_IMAGE``, 0×0). It is not a part image to
inspect; the pipeline publishes it as an ERROR verdict. Pure functions, used by edge/camera/genicam.py.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from edge.camera.frame import Frame
from edge.camera.genicam_settings import FREE_RUN
from edge.camera.triggers import FrameMatch

NO_IMAGE = np.zeros((0, 0), np.uint8)


def event_frame(
    reason: str,
    detail: str,
    meta: dict[str, Any],
    *,
    frame_id: int = -1,
    t_ns: int | None = None,
    wall_ns: int | None = None,
    image: np.ndarray = NO_IMAGE,
) -> Frame:
    """An event frame; ``frame_id`` -1 when no frame came (a missed trigger, lost frames)."""
    now_ns = time.monotonic_ns()
    t_ns = now_ns if t_ns is None else t_ns
    wall_ns = time.time_ns() - (now_ns - t_ns) if wall_ns is None else wall_ns
    return Frame(frame_id, t_ns, wall_ns, image, {**meta, "error": f"{reason}: {detail}", "event": reason})


def frame_meta(
    raw: dict[str, Any], match: FrameMatch, *, camera: str, mode: str, session: int
) -> dict[str, Any]:
    """The meta of a frame: the camera's ids and times, the part it answers (triggered)."""
    meta = {
        "source": "genicam", "camera": camera, "block_id": raw["block_id"],
        "camera_timestamp_ns": raw["camera_timestamp_ns"],
        "timestamp_source": "camera" if raw["camera_timestamp_ns"] is not None else "host",
        "pixel_format": raw["pixel_format"], "trigger": mode, "session": session,
    }  # fmt: skip
    if mode != FREE_RUN:
        meta["part_id"] = match.part_id
    if match.trigger_t_ns is not None:
        meta["trigger_to_frame_ms"] = round((raw["t_ns"] - match.trigger_t_ns) / 1e6, 3)
    return meta


def outage_count(
    mode: str, block: int | None, last_block: int | None, away_s: float, rate_hz: float | None, missed: int
) -> tuple[int, str]:
    """(parts lost while the camera was away, how that number was found).

    Triggered: the triggers and announced parts that got no frame (each was reported on its own).
    Free-run: the block-id gap when the camera kept numbering, else the time away at the frame rate.
    """
    if mode != FREE_RUN:
        return missed, "each waiting part was reported"
    if block is not None and last_block is not None and block > last_block:
        return block - last_block - 1, "counted from the block ids"
    if rate_hz:
        return round(away_s * rate_hz), f"estimated at {rate_hz:.1f} frames/s (block ids started again)"
    return 0, "not known (no frame rate yet)"


class RateMeter:
    """Frames per second from the arrival times (an exponential average of the intervals)."""

    def __init__(self) -> None:
        self._interval_ns = 0.0
        self._last_ns: int | None = None

    def update(self, t_ns: int) -> None:
        if self._last_ns is not None:
            interval = t_ns - self._last_ns
            self._interval_ns = (
                interval if self._interval_ns == 0 else 0.9 * self._interval_ns + 0.1 * interval
            )
        self._last_ns = t_ns

    @property
    def rate_hz(self) -> float | None:
        return 1e9 / self._interval_ns if self._interval_ns > 0 else None


def block_id(meta: dict[str, Any], fallback: int = -1) -> int:
    return meta["block_id"] if meta.get("block_id") is not None else fallback
