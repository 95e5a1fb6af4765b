"""The two real GenTL producers the camera tests run against, and small helpers around them.

- viky (``genicam`` 1.6.0, installed in the main environment): free-run only, no timestamps.
- TLSimu (``genicam`` 1.5.0, x86_64): software trigger, timestamps. It is kept apart from the main
  environment's genicam: the wheel is installed once with ``pip install --target`` into a folder of
  its own beside the virtual environment (``<venv>/share/inp-edge-tests/genicam-1.5.0``), and only its
  TLSimu.cti is used (a GenTL producer is a shared library loaded by path; TLSimu finds its GenICam
  libraries next to it). When it cannot be installed (no network, not x86_64) the tests that need it
  skip and say why.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edge.camera.frame import Frame
from edge.camera.genicam import GenICamSource

TLSIMU_VERSION = "1.5.0"
TLSIMU_FOLDER = Path(sys.prefix) / "share" / "inp-edge-tests" / f"genicam-{TLSIMU_VERSION}"
TLSIMU_COLOR = "SN_InterfaceA_1"  # TLSimuColor, RGB8 768x572
TLSIMU_MONO = "SN_InterfaceA_0"


def viky_cti() -> Path:
    import genicam

    path = Path(genicam.__file__).parent / "viky.cti"
    if not path.is_file():
        pytest.skip(f"viky.cti is not in this genicam package ({path})")
    return path


def tlsimu_cti() -> Path:
    """TLSimu.cti from genicam 1.5.0, installed on first use; skips when it cannot be had."""
    cti = TLSIMU_FOLDER / "genicam" / "TLSimu.cti"
    if cti.is_file():
        return cti
    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip(f"TLSimu (genicam {TLSIMU_VERSION}) is built for x86_64 only, not {platform.machine()}")
    staging = TLSIMU_FOLDER.with_name(f"{TLSIMU_FOLDER.name}.{os.getpid()}")
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(staging),
               f"genicam=={TLSIMU_VERSION}"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if result.returncode != 0 or not (staging / "genicam" / "TLSimu.cti").is_file():
        shutil.rmtree(staging, ignore_errors=True)
        pytest.skip(f"could not install genicam {TLSIMU_VERSION} for TLSimu: {result.stderr.strip()[-300:]}")
    try:
        staging.rename(TLSIMU_FOLDER)
    except OSError:  # another run installed it meanwhile
        shutil.rmtree(staging, ignore_errors=True)
    return cti


def grab_until(source: GenICamSource, accept: Callable[[Frame], bool], timeout_s: float = 5.0,
               between: Callable[[], None] | None = None) -> tuple[Frame, list[Frame]]:  # fmt: skip
    """The first frame ``accept`` takes, and every frame before it; fails the test after ``timeout_s``."""
    seen: list[Frame] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if between is not None:
            between()
        frame = source.grab(0.1)
        if frame is None:
            continue
        if accept(frame):
            return frame, seen
        seen.append(frame)
    raise AssertionError(f"no accepted frame within {timeout_s} s; got {[f.meta for f in seen][:5]}")


def is_part(frame: Frame) -> bool:
    """A real frame, not an ERROR event frame."""
    return "error" not in frame.meta
