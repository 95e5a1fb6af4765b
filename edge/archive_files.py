"""The archive's records on disk: their files, their bytes, and the start-up scan (edge/archive.py).

A record is ``<folder>/YYYYMMDD/<id>.json`` + ``<id>.<frame format>`` + ``<id>.jpg`` (no overlay:
no .jpg). The JSON is written last and deleted first, so a record without one is incomplete (a crash
came mid-write or mid-eviction) and the scan deletes it, with the temp files of edge/atomic.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

OVERLAY_EXT, HEADER_EXT = "jpg", "json"
RECORD_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")  # no dots: the file stem is the record id
DAY_FOLDER = re.compile(r"\d{8}")


@dataclass(frozen=True)
class Record:
    """One complete record in the index."""

    day: str  # YYYYMMDD, the folder
    record_id: str
    size_bytes: int  # all its files together
    names: tuple[str, ...]  # file names in the day folder, JSON first (the order of deletion)

    @property
    def key(self) -> str:
        return f"{self.day}/{self.record_id}"


def record_blobs(
    record_id: str,
    verdict_header: Mapping[str, Any],
    frame_image: np.ndarray,
    overlay_jpeg: bytes | None,
    reason: str,
    *,
    frame_format: str,
    wall_ns: int,
) -> list[tuple[str, bytes]] | None:
    """(file name, bytes) of one record in writing order, JSON last; None when OpenCV cannot encode."""
    frame_bytes = encode_frame(frame_image, frame_format)
    if frame_bytes is None:
        return None
    files: dict[str, str | None] = {"frame": f"{record_id}.{frame_format}", "overlay": None}
    blobs = [(f"{record_id}.{frame_format}", frame_bytes)]
    if overlay_jpeg is not None:
        files["overlay"] = f"{record_id}.{OVERLAY_EXT}"
        blobs.append((f"{record_id}.{OVERLAY_EXT}", bytes(overlay_jpeg)))
    # Nested, so the verdict's own keys (its error "reason" among them) are kept as published.
    archive = {"record_id": record_id, "reason": reason, "files": files, "saved_wall_ns": wall_ns}
    header = json.dumps({**verdict_header, "archive": archive}, indent=1).encode("utf-8")
    blobs.append((f"{record_id}.{HEADER_EXT}", header))
    return blobs


def encode_frame(frame_image: np.ndarray, frame_format: str) -> bytes | None:
    """The frame (uint8 mono or RGB) as lossless image bytes in BGR order; None when OpenCV fails."""
    image = frame_image
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.size == 0:
        kind = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"archive frame must be a non-empty uint8 H×W or H×W×3 RGB array, got {kind}")
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    elif not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1)):
        raise ValueError(f"archive frame has shape {image.shape}; expected H×W or H×W×3 RGB")
    try:
        ok, encoded = cv2.imencode(f".{frame_format}", image)
    except cv2.error:
        return None
    return encoded.tobytes() if ok else None


def is_temp_file(name: str) -> bool:
    """A temp file of edge/atomic.py (``.<target>.<random>.tmp``), left behind by a crash."""
    return name.startswith(".") and name.endswith(".tmp")


def scan_folder(folder: Path) -> tuple[list[Record], list[str]]:
    """The complete records under ``folder``, oldest first; deletes temp files and incomplete records.

    Returns the records and the problems met (leftovers that could not be deleted). Folders and files
    with other names are not the archive's and are left alone. One ``stat`` per file.
    """
    found: list[tuple[int, Record]] = []
    problems: list[str] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if is_temp_file(entry.name):
                _remove(Path(entry.path), problems)
            elif DAY_FOLDER.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):
                found.extend(_scan_day(Path(entry.path), problems))
    found.sort(key=lambda item: (item[0], item[1].day, item[1].record_id))
    return [record for _, record in found], problems


def _scan_day(day_dir: Path, problems: list[str]) -> list[tuple[int, Record]]:
    """(JSON mtime ns, record) of each complete record in one day folder."""
    groups: dict[str, list[tuple[str, int]]] = {}
    header_ns: dict[str, int] = {}
    with os.scandir(day_dir) as entries:
        for entry in entries:
            stem, _, ext = entry.name.partition(".")
            if is_temp_file(entry.name):
                _remove(Path(entry.path), problems)
            elif RECORD_ID.fullmatch(stem) and entry.is_file(follow_symlinks=False):
                stat = entry.stat(follow_symlinks=False)
                groups.setdefault(stem, []).append((entry.name, stat.st_size))
                if ext == HEADER_EXT:
                    header_ns[stem] = stat.st_mtime_ns
    records = []
    for stem, files in groups.items():
        if stem not in header_ns:  # incomplete: the crash came before its JSON was written
            for name, _ in files:
                _remove(day_dir / name, problems)
            continue
        names = sorted((name for name, _ in files), key=lambda name: not name.endswith(f".{HEADER_EXT}"))
        size = sum(size for _, size in files)
        records.append((header_ns[stem], Record(day_dir.name, stem, size, tuple(names))))
    if not records:
        with contextlib.suppress(OSError):  # fails while other files remain, as it should
            day_dir.rmdir()
    return records


def _remove(path: Path, problems: list[str]) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as error:
        problems.append(f"archive: cannot delete leftover {path}: {error}")
