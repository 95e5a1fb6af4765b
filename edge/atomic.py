"""Atomic file writes: a crash, a power cut or ``kill -9`` leaves the old file or the new one.

Temp file beside the target, fsync, chmod to a readable mode (mkstemp creates 0600, which a service
running as another user could not read), rename over the target, fsync of the folder.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

DEFAULT_MODE = 0o644


@contextlib.contextmanager
def atomic_writer(path: str | Path, *, mode: int = DEFAULT_MODE) -> Iterator[BinaryIO]:
    """Yield a binary handle; the target is replaced only if the block finishes without error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, mode & ~_umask())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def write_bytes_atomic(path: str | Path, data: bytes, *, mode: int = DEFAULT_MODE) -> Path:
    with atomic_writer(path, mode=mode) as handle:
        handle.write(data)
    return Path(path)


def write_text_atomic(path: str | Path, text: str, *, mode: int = DEFAULT_MODE) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"), mode=mode)


def fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform lets a folder be opened
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
