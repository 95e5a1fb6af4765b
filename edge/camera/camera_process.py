"""The camera in a supervised child process: the source's handle on it.

Why a process: harvesters keeps memory on every re-creation of an acquirer (measured here: 8.5 MB
over 20 with viky, docs/cameras.md), some producers stay wedged after a cable pull until the process
ends, and a crash in a vendor's producer must not take the service down. So each camera session
(open, stream, loss) lives in its own process (edge/camera/camera_child.py, started with "spawn":
never fork a process that runs threads); a loss ends it and the source starts a fresh one. Frames
come through shared memory (edge/camera/frame_ring.py), everything else through two pipes.

Messages, child → parent: ("waiting", text), ("fatal", message, fix), ("ready", info),
("ring", path, slot_bytes, slots), ("frame", slot, shape, meta, inline bytes or None),
("dropped", meta), ("trigger-failed", seq, text), ("lost", reason), ("gave-up", reason).
Parent → child: ("trigger", seq), ("free", slot), ("stop",).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
from pathlib import Path
from typing import Any

import numpy as np

from edge.camera.camera_child import camera_main
from edge.camera.frame_ring import FrameRing
from edge.camera.genicam_settings import GenICamSettings


class CameraProcess:
    """The parent's handle on one camera process: start, read messages, copy frames out, stop."""

    def __init__(self, settings: GenICamSettings) -> None:
        context = multiprocessing.get_context("spawn")  # never fork a process that runs threads
        child_in, self._to_child = context.Pipe(duplex=False)
        self._from_child, child_out = context.Pipe(duplex=False)
        self._process = context.Process(
            target=camera_main, args=(child_in, child_out, settings), name="inp-edge-camera", daemon=True
        )
        self._process.start()
        child_in.close()
        child_out.close()
        self._lock = threading.Lock()
        self._ring: FrameRing | None = None
        self.ended = False

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def poll(self, timeout_s: float) -> tuple[Any, ...] | None:
        """The next message within ``timeout_s``; ("lost", ...) once when the process ended."""
        if self.ended:
            return None
        try:
            if not self._from_child.poll(max(0.0, timeout_s)):
                return None
            message = self._from_child.recv()
        except (EOFError, OSError):
            self.ended = True
            self._process.join(0.5)
            return ("lost", f"the camera process ended (exit code {self._process.exitcode})")
        if message[0] == "ring":
            self._attach(Path(message[1]), message[2], message[3])
            return self.poll(timeout_s)
        return message

    def _attach(self, path: Path, slot_bytes: int, slots: int) -> None:
        self._ring = FrameRing(path, slot_bytes, slots, create=False)
        self._ring.unlink()  # both sides have it mapped; nothing is left behind whatever happens next

    def take_image(self, message: tuple[Any, ...]) -> np.ndarray:
        """A copy of the pixels of a ("frame", ...) message; its slot goes back to the camera."""
        _, slot, shape, _, inline = message
        if slot < 0:
            return np.frombuffer(inline, np.uint8).reshape(shape).copy()
        assert self._ring is not None, "a frame in a slot before the ring was announced"
        image = self._ring.view(slot, tuple(shape)).copy()
        self.send("free", slot)
        return image

    def send(self, *message: Any) -> None:
        with self._lock, contextlib.suppress(OSError):  # the process is ending; poll() reports it
            self._to_child.send(message)

    def stop(self, timeout_s: float = 2.0) -> None:
        """Ask the process to close the camera and end; terminate, then kill, past ``timeout_s``."""
        self.send("stop")
        self.reap(timeout_s)

    def reap(self, timeout_s: float = 0.0) -> bool:
        """Wait up to ``timeout_s`` for the process; end it by force after that. True when it is gone."""
        self._process.join(timeout_s)
        if self._process.is_alive() and timeout_s > 0:
            self._process.terminate()
            self._process.join(1.0)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(1.0)
        gone = not self._process.is_alive()
        if gone:
            self._close_ends()
        return gone

    def _close_ends(self) -> None:
        for end in (self._to_child, self._from_child):
            end.close()
        if self._ring is not None:
            self._ring.close()
            self._ring = None
