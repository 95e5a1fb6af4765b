"""USB3 Vision needs more usbfs buffer memory than Linux allows by default (16 MB).

A USB3 Vision camera streams through usbfs; past ``usbcore.usbfs_memory_mb`` the kernel refuses
buffers and the camera drops frames or stops streaming, typically at full resolution or high frame
rates. ``check_usbfs_memory`` is the pure check; ``warn_if_usbfs_low`` reads the setting at start-up
and logs a warning that names the fix (docs/deploy.md, "USB3 Vision").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("inp_edge.usbfs")

USBFS_MEMORY_PATH = Path("/sys/module/usbcore/parameters/usbfs_memory_mb")
MIN_USBFS_MEMORY_MB = 1000
FIX = (
    "now: `echo 1000 | sudo tee {path}`; at every boot: the kernel parameter usbcore.usbfs_memory_mb=1000 "
    "or the tmpfiles.d line in docs/deploy.md"
)


@dataclass(frozen=True)
class UsbfsCheck:
    ok: bool
    memory_mb: int | None  # None: the setting could not be read (no usbcore, not Linux)
    message: str


def check_usbfs_memory(memory_mb: int | None, minimum_mb: int = MIN_USBFS_MEMORY_MB) -> UsbfsCheck:
    """Whether usbfs may allocate ``minimum_mb``; 0 means no limit (pure)."""
    if memory_mb is None:
        return UsbfsCheck(True, None, "usbfs memory limit unknown (usbcore parameters not readable)")
    if memory_mb == 0 or memory_mb >= minimum_mb:
        limit = "no limit" if memory_mb == 0 else f"{memory_mb} MB"
        return UsbfsCheck(True, memory_mb, f"usbfs memory: {limit}")
    return UsbfsCheck(
        False,
        memory_mb,
        f"usbfs memory limit is {memory_mb} MB (below {minimum_mb} MB): a USB3 Vision camera may drop "
        "frames or stop streaming",
    )


def read_usbfs_memory_mb(path: Path = USBFS_MEMORY_PATH) -> int | None:
    """The kernel's usbfs memory limit in MB; None when the file is absent or unreadable."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def warn_if_usbfs_low(path: Path = USBFS_MEMORY_PATH, minimum_mb: int = MIN_USBFS_MEMORY_MB) -> UsbfsCheck:
    """Read and check the limit; a warning naming the fix when it is too low (a USB3 Vision start-up)."""
    result = check_usbfs_memory(read_usbfs_memory_mb(path), minimum_mb)
    if not result.ok:
        log.warning("%s; fix %s", result.message, FIX.format(path=path))
    else:
        log.debug("%s", result.message)
    return result
