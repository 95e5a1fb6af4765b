"""The part archive: the frame and overlay of every FAIL and ERROR, sampled passes and captured parts.

A record is ``<folder>/YYYYMMDD/<id>.json`` (the verdict header, with ``archive`` added: reason,
files, save time), ``<id>.png`` (the frame, lossless) and ``<id>.jpg`` (the overlay, when there is
one); the day is the local date at save. Each file is written atomically and the JSON last, so a
record with a JSON is complete; at start, records without a JSON and temp files left by a crash are
deleted (eviction deletes the JSON first for the same reason).

The byte quota counts the files' bytes: before each save the oldest records (by the JSON's time) go,
all their files together, until the new record fits; a record larger than the whole quota is
refused. The total is kept in memory, from one scan of the folder at start.

The archive never raises an ``OSError`` to its caller: a full disk, a read-only, vanished or
impossible folder makes ``save`` return ``ok=False`` with the error, which ``status()`` also reports
for the heartbeat. A vanished folder is not re-created (it may be an unmounted disk whose mount point
must not fill the system disk). One worker thread owns an ``Archive``; ``status()`` may be called
from any thread.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.archive_files import RECORD_ID, Record, record_blobs, scan_folder
from edge.atomic import write_bytes_atomic
from edge.decision import ERROR, FAIL, PASS, VERDICTS
from edge.errors import ConfigError

log = logging.getLogger(__name__)

FAIL_REASON, ERROR_REASON, SAMPLE, CAPTURE = "fail", "error", "sample", "capture"
REASONS = (FAIL_REASON, ERROR_REASON, SAMPLE, CAPTURE)
FRAME_FORMATS = ("png", "tiff", "bmp")  # lossless only: the archive keeps what the camera saw


@dataclass(frozen=True)
class ArchiveSettings:
    folder: Path
    quota_bytes: int  # the station config's archive.quota_mb × 10⁶
    frame_format: str = "png"

    def __post_init__(self) -> None:
        if self.quota_bytes <= 0:
            raise ConfigError(
                f"archive quota of {self.quota_bytes} bytes; it must be positive",
                fix="set archive.quota_mb in the station config to the megabytes the archive may use",
            )
        if self.frame_format not in FRAME_FORMATS:
            raise ConfigError(
                f"archive.frame_format {self.frame_format!r} is not one of {FRAME_FORMATS}",
                fix="use png (lossless, smaller) unless a tool needs tiff or bmp",
            )


def should_archive(
    verdict: str, pass_index: int, sample_pass_every: int, capture_requested: bool
) -> str | None:
    """Why a part is archived ("fail", "error", "capture", "sample") or None (pure).

    ``pass_index`` counts passes from 0; with ``sample_pass_every`` N the passes 0, N, 2N … are kept.
    A FAIL or ERROR keeps its own reason even when a capture was requested (it is archived anyway).
    """
    if verdict not in VERDICTS:
        raise ValueError(f"unknown verdict {verdict!r}; expected one of {VERDICTS}")
    if verdict == FAIL:
        return FAIL_REASON
    if verdict == ERROR:
        return ERROR_REASON
    if capture_requested:
        return CAPTURE
    if verdict == PASS and sample_pass_every > 0 and pass_index % sample_pass_every == 0:
        return SAMPLE
    return None


@dataclass(frozen=True)
class ArchiveOutcome:
    ok: bool
    record_id: str
    reason: str
    paths: tuple[Path, ...] = ()  # the files written, JSON last
    bytes_written: int = 0
    evicted_records: int = 0
    error: str = ""


@dataclass(frozen=True)
class ArchiveStatus:
    records: int
    bytes_used: int
    quota_bytes: int
    last_error: str
    last_error_wall_ns: int  # 0: no error since start
    failures: int
    writable: bool


class Archive:
    """The archive folder with its quota; one worker thread owns it, ``status()`` is thread-safe."""

    def __init__(self, settings: ArchiveSettings, *, wall_clock_ns: Callable[[], int] = time.time_ns) -> None:
        self.settings = settings
        self.folder = Path(settings.folder)
        self._wall_clock_ns = wall_clock_ns
        self._records: OrderedDict[str, Record] = OrderedDict()  # oldest first; key "day/id"
        self._bytes_used = 0
        self._lock = threading.Lock()  # guards the index totals and the status fields
        self._last_error, self._last_error_wall_ns, self._failures = "", 0, 0
        self._writable = False
        self._open()

    def status(self) -> ArchiveStatus:
        with self._lock:
            return ArchiveStatus(
                records=len(self._records),
                bytes_used=self._bytes_used,
                quota_bytes=self.settings.quota_bytes,
                last_error=self._last_error,
                last_error_wall_ns=self._last_error_wall_ns,
                failures=self._failures,
                writable=self._writable,
            )

    def save(
        self,
        record_id: str,
        verdict_header: Mapping[str, Any],
        frame_image: np.ndarray,
        overlay_jpeg: bytes | None,
        reason: str,
    ) -> ArchiveOutcome:
        """Write one record (replacing one of the same id and day); never raises an OSError."""
        if not RECORD_ID.fullmatch(record_id):
            raise ValueError(f"archive record id {record_id!r} must match {RECORD_ID.pattern}")
        wall_ns = self._wall_clock_ns()
        fmt = self.settings.frame_format
        blobs = record_blobs(
            record_id, verdict_header, frame_image, overlay_jpeg, reason, frame_format=fmt, wall_ns=wall_ns
        )
        if blobs is None:
            return self._failed(record_id, reason, f"OpenCV could not encode the frame of record {record_id}")
        size = sum(len(data) for _, data in blobs)
        if size > self.settings.quota_bytes:
            detail = f"record {record_id} of {size} bytes is larger than the whole quota of {self.settings.quota_bytes}"
            return self._failed(record_id, reason, f"archive {self.folder}: {detail}; raise archive.quota_mb")
        day = time.strftime("%Y%m%d", time.localtime(wall_ns / 1e9))
        try:
            evicted = self._make_room(f"{day}/{record_id}", size)
            paths = self._write(day, blobs)
        except OSError as error:
            detail = f"archive {self.folder}: cannot save record {record_id}: {error}"
            return self._failed(record_id, reason, detail, writable=False)
        self._add(Record(day, record_id, size, tuple(name for name, _ in reversed(blobs))), ok=True)
        return ArchiveOutcome(True, record_id, reason, paths, size, evicted)

    # --- start-up -------------------------------------------------------------------------------

    def _open(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            records, problems = scan_folder(self.folder)
        except OSError as error:
            self._note_error(f"archive {self.folder} cannot be opened: {error}")
            return
        for record in records:
            self._add(record, ok=False)
        for problem in problems:
            self._note_error(problem)
        with self._lock:
            self._writable = os.access(self.folder, os.W_OK | os.X_OK)
        status = self.status()
        log.info(
            "archive %s: %d records, %d of %d bytes",
            self.folder,
            status.records,
            status.bytes_used,
            status.quota_bytes,
        )

    # --- writing and eviction -------------------------------------------------------------------

    def _make_room(self, key: str, size: int) -> int:
        if not self.folder.is_dir():
            raise FileNotFoundError(
                errno.ENOENT, "archive folder is missing (unmounted or deleted)", str(self.folder)
            )
        if key in self._records:
            self._evict(key)
        evicted = 0
        while self._records and self._bytes_used + size > self.settings.quota_bytes:
            self._evict(next(iter(self._records)))
            evicted += 1
        return evicted

    def _evict(self, key: str) -> None:
        record = self._records[key]
        day_dir = self.folder / record.day
        for name in record.names:  # JSON first: a crash here leaves an incomplete record, removed at start
            with contextlib.suppress(FileNotFoundError):
                (day_dir / name).unlink()
        with self._lock:
            del self._records[key]
            self._bytes_used -= record.size_bytes
        with contextlib.suppress(OSError):  # only succeeds once the day folder is empty
            day_dir.rmdir()

    def _write(self, day: str, blobs: list[tuple[str, bytes]]) -> tuple[Path, ...]:
        day_dir = self.folder / day
        day_dir.mkdir(exist_ok=True)  # not parents: a vanished archive folder is not re-created
        written: list[Path] = []
        try:
            for name, data in blobs:
                written.append(write_bytes_atomic(day_dir / name, data))
        except OSError:
            for path in written:
                with contextlib.suppress(OSError):
                    path.unlink()
            raise
        return tuple(written)

    def _add(self, record: Record, *, ok: bool) -> None:
        with self._lock:
            self._records[record.key] = record
            self._bytes_used += record.size_bytes
            if ok:
                self._writable = True

    def _failed(
        self, record_id: str, reason: str, error: str, *, writable: bool | None = None
    ) -> ArchiveOutcome:
        self._note_error(error, writable=writable)
        with self._lock:
            self._failures += 1
        return ArchiveOutcome(False, record_id, reason, error=error)

    def _note_error(self, error: str, *, writable: bool | None = False) -> None:
        with self._lock:
            repeated = error == self._last_error
            self._last_error, self._last_error_wall_ns = error, self._wall_clock_ns()
            if writable is not None:
                self._writable = writable
        (log.debug if repeated else log.warning)("%s", error)
