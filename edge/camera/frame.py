"""The frame-source seam: one small protocol every source (replay, generated line, GenICam) follows.

A source is a context manager owned by the acquisition loop. ``grab(timeout_s)`` returns the next
``Frame``, ``None`` when nothing came within the timeout (a quiet trigger line is not an error), or
raises ``SourceExhausted`` when a finite source has delivered everything. Frames own their pixels:
a source copies a driver buffer before handing it on.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np


class SourceExhausted(Exception):
    """A finite source (a replay without loop, a bounded generated line) has no more frames."""


@dataclass(frozen=True)
class Frame:
    """One captured part image."""

    frame_id: int  # the source's own id (camera frame / block id), else a running count from 0
    t_capture_ns: int  # time.monotonic_ns() at capture, for durations and deadlines
    wall_time_ns: int  # time.time_ns() at capture, for timestamps in messages
    image: np.ndarray  # uint8 H×W (mono) or H×W×3 RGB, owned by the frame
    meta: Mapping[str, Any] = field(default_factory=dict)  # source metadata (file, labels, camera ids)


def now_ns() -> tuple[int, int]:
    """(monotonic, wall clock) now, in nanoseconds: the two capture times of a frame."""
    return time.monotonic_ns(), time.time_ns()


@runtime_checkable
class FrameSource(Protocol):
    """What the acquisition loop needs from a source."""

    name: str  # short human description, e.g. "replay /data/parts (42 images, loop)"

    def __enter__(self) -> FrameSource: ...

    def __exit__(self, *exc_info: object) -> None: ...

    def grab(self, timeout_s: float) -> Frame | None:
        """The next frame; None after ``timeout_s`` without one; ``SourceExhausted`` at the end."""
        ...

    def connected(self) -> bool:
        """Whether the source can deliver now (a camera that went away answers False)."""
        ...
