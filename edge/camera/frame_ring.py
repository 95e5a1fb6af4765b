"""Frames between the camera process and the source: fixed-size slots in one shared file mapping.

The camera process creates the ring (a file in /dev/shm, or the temporary folder where there is none)
and announces it; the source maps it and unlinks the file at once, so whatever happens next nothing
is left behind (the memory goes when both sides have unmapped it). A slot holds one converted frame;
the camera process writes into a free slot, the source copies the frame out and frees the slot.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import tempfile
import time
from pathlib import Path

import numpy as np


class FrameRing:
    """``slots`` slots of ``slot_bytes`` in one shared file mapping."""

    def __init__(self, path: Path, slot_bytes: int, slots: int, *, create: bool) -> None:
        self.path, self.slot_bytes, self.slots = path, slot_bytes, slots
        flags = os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0)
        fd = os.open(path, flags, 0o600)
        try:
            if create:
                os.ftruncate(fd, slot_bytes * slots)
            self._map = mmap.mmap(fd, slot_bytes * slots)
        finally:
            os.close(fd)

    @classmethod
    def create(cls, slot_bytes: int, slots: int) -> FrameRing:
        folder = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
        path = folder / f"inp-edge-camera-{os.getpid()}-{time.monotonic_ns()}"
        return cls(path, slot_bytes, slots, create=True)

    def view(self, slot: int, shape: tuple[int, ...]) -> np.ndarray:
        return np.ndarray(shape, np.uint8, buffer=self._map, offset=slot * self.slot_bytes)

    def fits(self, shape: tuple[int, ...]) -> bool:
        return int(np.prod(shape)) <= self.slot_bytes

    def close(self) -> None:
        with contextlib.suppress(BufferError):  # a view is still alive somewhere; the mapping goes with it
            self._map.close()

    def unlink(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
