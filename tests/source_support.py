"""Grabbing from a frame source until it ends or for n frames, and writing small images and videos to replay."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.camera.frame import Frame, FrameSource, SourceExhausted


def grab_all(source: FrameSource, limit: int = 1000) -> list[Frame]:
    frames = []
    with source:
        for _ in range(limit):
            try:
                frame = source.grab(timeout_s=1.0)
            except SourceExhausted:
                return frames
            assert frame is not None
            frames.append(frame)
    raise AssertionError(f"{source.name} was not exhausted after {limit} frames")


def grab_n(source: FrameSource, n: int, timeout_s: float = 1.0) -> list[Frame]:
    frames = []
    with source:
        for _ in range(n):
            frame = source.grab(timeout_s=timeout_s)
            assert frame is not None
            frames.append(frame)
    return frames


def write_png(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)
    return path


def flat_bgr(value: int, size_px: int = 16) -> np.ndarray:
    image = np.zeros((size_px, size_px, 3), np.uint8)
    image[..., 0] = value  # blue channel carries the value, red stays 0
    return image


def write_video(path: Path, n_frames: int, size_px: int = 32) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (size_px, size_px))
    assert writer.isOpened()
    for index in range(n_frames):
        writer.write(flat_bgr(40 + 40 * index, size_px))
    writer.release()
    return path
