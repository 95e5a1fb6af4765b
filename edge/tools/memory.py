"""Resident memory of a process, for the soak measurements (the pipeline bench, the camera tests)."""

from __future__ import annotations

from edge.errors import InpEdgeError


def rss_mb(pid: int | None = None) -> float:
    """Resident set size in MB (VmRSS of /proc/<pid>/status) of ``pid``, or of this process."""
    path = f"/proc/{'self' if pid is None else pid}/status"
    try:
        with open(path, encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError as exc:
        raise InpEdgeError(
            f"cannot read the resident memory from {path}: {exc.strerror or exc}",
            fix="measure memory on Linux, of a process that is still running",
        ) from exc
    raise InpEdgeError(f"{path} has no VmRSS line", fix="measure a user process (a kernel thread has none)")
