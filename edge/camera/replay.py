"""Replay sources: a folder of images, or a video file, delivered as a line would deliver parts.

``FolderReplay`` plays the image files of a folder (png, jpg, jpeg, bmp, tif, tiff; hidden files
ignored) in natural name order ("part2" before "part10"). When the folder holds no images itself it
plays its subfolders, one level deep and in name order, and each frame's label is its subfolder's
name: an MVTec test folder (good / scratch / ...) replays every defect type with its label. Colour
images become RGB, grayscale stays H×W mono, 16-bit images become 8-bit (the top 8 bits, with a
warning). A file that cannot be decoded is skipped with a warning and counted in ``skipped``: a
replay must not stop the line. A folder that is missing, holds no images, or none that can be read,
is a ``SourceError``.

``VideoReplay`` plays a video file through OpenCV's decoder; ``loop`` opens it again at the end.

Both pace and stamp frames as ``edge/camera/pacing.py`` says; ``frame_id`` counts from 0 across loops.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.camera.frame import SourceExhausted
from edge.camera.pacing import PacedSource, describe_rate
from edge.errors import SourceError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg", ".webm", ".wmv")


class UnsupportedImage(Exception):
    """Decoded pixels that are not a frame (float data, an odd channel count)."""


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders the digits in a name by value: "part2" before "part10"."""
    return tuple((0, int(chunk)) if chunk.isdigit() else (1, chunk) for chunk in re.split(r"(\d+)", name))


def _images_in(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]
    return sorted((p for p in files if p.is_file()), key=lambda p: natural_key(p.name))


def list_replay_images(folder: Path) -> list[tuple[Path, str | None]]:
    """(file, label) in replay order: the folder's images (label None), else its subfolders' (label = name)."""
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise SourceError(
            f"replay folder {folder} {what}",
            fix="set the source path to a folder of images (or a video file)",
        )
    direct = _images_in(folder)
    if direct:
        return [(p, None) for p in direct]
    subfolders = sorted(
        (p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: natural_key(p.name),
    )
    labelled = [(p, sub.name) for sub in subfolders for p in _images_in(sub)]
    if not labelled:
        raise SourceError(
            f"replay folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)}), "
            "neither directly nor in its subfolders",
            fix="point the source path at the folder that holds the images, or at their parent folder",
        )
    return labelled


def to_frame_pixels(raw: np.ndarray) -> np.ndarray:
    """uint8 H×W mono or H×W×3 RGB from what ``cv2.imread(..., IMREAD_UNCHANGED)`` returned."""
    if raw.dtype == np.uint16:
        raw = (raw >> 8).astype(np.uint8)
    if raw.dtype != np.uint8:
        raise UnsupportedImage(f"{raw.dtype} pixels (only 8- and 16-bit images are replayed)")
    if raw.ndim == 2:
        return raw
    channels = raw.shape[2] if raw.ndim == 3 else 0
    if channels == 1:
        return np.ascontiguousarray(raw[..., 0])
    if channels == 3:
        return cv2.cvtColor(raw, cv2.COLOR_BGR2RGB)
    if channels == 4:
        return cv2.cvtColor(raw, cv2.COLOR_BGRA2RGB)
    raise UnsupportedImage(f"shape {raw.shape} (expected H×W, H×W×3 or H×W×4)")


class FolderReplay(PacedSource):
    """The images of ``folder`` as parts; ``loop`` starts again after the last one."""

    def __init__(self, folder: Path | str, loop: bool = False, rate_pps: float = 0) -> None:
        super().__init__(rate_pps)
        self.folder = Path(folder)
        self.loop = bool(loop)
        self._files = list_replay_images(self.folder)
        self._index = 0
        self._pass = 0
        self._delivered = 0
        self._warned_16bit = False
        self.skipped = 0  # files that could not be decoded, counted each time they came up
        labels = sorted({label for _, label in self._files if label is not None})
        labelled = f", labels {'/'.join(labels)}" if labels else ""
        self.name = (
            f"replay {self.folder} ({len(self._files)} images{labelled}, "
            f"{'loop' if self.loop else 'once'}, {describe_rate(self.rate_pps)})"
        )

    def _produce(self) -> tuple[np.ndarray, dict[str, Any]]:
        for _ in range(len(self._files)):
            if self._index >= len(self._files):
                self._end_of_pass()
            index = self._index
            path, label = self._files[index]
            self._index += 1
            image = self._read(path)
            if image is not None:
                self._delivered += 1
                rel = path.relative_to(self.folder).as_posix()
                meta = {"source": "replay", "file": rel, "label": label, "index": index, "pass": self._pass}
                return image, meta
        raise self._nothing_readable()

    def _end_of_pass(self) -> None:
        if self._delivered == 0:
            raise self._nothing_readable()
        if not self.loop:
            raise SourceExhausted(f"{self.name}: all images delivered")
        self._index = 0
        self._pass += 1

    def _nothing_readable(self) -> SourceError:
        return SourceError(
            f"replay folder {self.folder}: none of its {len(self._files)} images could be read",
            fix="check the files are images OpenCV can decode (see the warnings above)",
        )

    def _read(self, path: Path) -> np.ndarray | None:
        try:
            raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if raw is None:
                raise UnsupportedImage("OpenCV could not decode it (corrupt, truncated or not an image)")
            if raw.dtype == np.uint16 and not self._warned_16bit:
                log.warning(
                    "replay %s: 16-bit images are replayed as 8-bit (top 8 bits), first: %s",
                    self.folder,
                    path,
                )
                self._warned_16bit = True
            return to_frame_pixels(raw)
        except (UnsupportedImage, cv2.error) as error:
            self.skipped += 1
            log.warning(
                "replay %s: skipped %s: %s (%d skipped so far)", self.folder, path, error, self.skipped
            )
            return None


class VideoReplay(PacedSource):
    """The frames of a video file as parts; ``loop`` opens it again at the end."""

    def __init__(self, path: Path | str, loop: bool = False, rate_pps: float = 0) -> None:
        super().__init__(rate_pps)
        self.path = Path(path)
        self.loop = bool(loop)
        if not self.path.is_file():
            what = "is not a file" if self.path.exists() else "does not exist"
            raise SourceError(f"replay video {self.path} {what}", fix="set the source path to a video file")
        self._capture: cv2.VideoCapture | None = None
        self._first: np.ndarray | None = None
        self._position = 0
        self.name = self._describe(frames=None)

    def _describe(self, frames: int | None) -> str:
        count = f"{frames} frames, " if frames else ""
        return f"video {self.path} ({count}{'loop' if self.loop else 'once'}, {describe_rate(self.rate_pps)})"

    def _open(self) -> None:
        self._capture, self._first = self._start()
        self._position = 0
        self.name = self._describe(int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT)))

    def _close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
        self._first = None

    def _start(self) -> tuple[cv2.VideoCapture, np.ndarray]:
        """Open the video and decode its first frame, so an unreadable file fails here."""
        capture = cv2.VideoCapture(str(self.path))
        ok, first = capture.read() if capture.isOpened() else (False, None)
        if not ok or first is None:
            capture.release()
            raise SourceError(
                f"replay video {self.path} cannot be decoded by OpenCV",
                fix="check the file plays (e.g. ffprobe), or convert it to MJPG .avi or H.264 .mp4",
            )
        return capture, first

    def _produce(self) -> tuple[np.ndarray, dict[str, Any]]:
        decoded = self._next_decoded()
        meta = {"source": "video", "file": str(self.path), "position": self._position}
        self._position += 1
        image = decoded if decoded.ndim == 2 else cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
        return image, meta

    def _next_decoded(self) -> np.ndarray:
        if self._first is not None:
            decoded, self._first = self._first, None
            return decoded
        assert self._capture is not None  # _produce runs only while open
        ok, decoded = self._capture.read()
        if ok and decoded is not None:
            return decoded
        if not self.loop:
            raise SourceExhausted(f"{self.name}: end of video")
        self._capture.release()
        self._capture, decoded = self._start()
        self._position = 0
        return decoded
