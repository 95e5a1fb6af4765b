"""The camera in a supervised child process: the source's handle on it.

Why a process: harvesters keeps memory on every re-creation of an acquirer (docs/cameras.md; the
figures are in docs/results/harvester-memory.json, from edge/tools/harvester_memory.py), some
producers stay wedged after a cable pull until the process ends, and a crash in a vendor's producer
must not take the service down. So each camera session
(open, stream, loss) lives in its own process (edge/camera/camera_child.py, started with "spawn":
never fork a process that runs threads); a loss ends it and the source starts a fresh one. Frames
come through shared memory (edge/camera/frame_ring.py), everything else through two pipes.

A process told to stop is waited for only at close (``stop``); on the acquisition path
``RetiredProcesses.reap`` never waits: it terminates, then kills, one that takes too long.

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
from edge.camera.genicam_settings import GenICamSettings, ProcessOptions


class CameraProcess:
    """The parent's handle on one camera process: start, read messages, copy frames out, stop."""

    def __init__(self, settings: GenICamSettings, options: ProcessOptions) -> None:
        context = multiprocessing.get_context("spawn")  # never fork a process that runs threads
        child_in, self._to_child = context.Pipe(duplex=False)
        self._from_child, child_out = context.Pipe(duplex=False)
        self._process = context.Process(
            target=camera_main,
            args=(child_in, child_out, settings, options),
            name="inp-edge-camera",
            daemon=True,
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
        """Ask the process to close the camera and end, and wait for it: ``timeout_s``, then terminate
        and kill (up to 1 s each). For a close, never on the acquisition path (``reap`` does not wait)."""
        self.send("stop")
        if self.reap(timeout_s):
            return
        self.terminate()
        if self.reap(1.0):
            return
        self.kill()
        self.reap(1.0)

    def reap(self, timeout_s: float = 0.0) -> bool:
        """True when the process has ended (waiting up to ``timeout_s``); its pipes and ring are closed then."""
        self._process.join(timeout_s)
        if self._process.is_alive():
            return False
        self._close_ends()
        return True

    def terminate(self) -> None:
        """SIGTERM, without waiting (the process closes the camera and ends)."""
        self._process.terminate()

    def kill(self) -> None:
        """SIGKILL, without waiting (a process wedged in its producer)."""
        self._process.kill()

    def _close_ends(self) -> None:
        for end in (self._to_child, self._from_child):
            end.close()
        if self._ring is not None:
            self._ring.close()
            self._ring = None


RETIRE_S = 3.0  # a retired camera process has this long to close the camera before it is terminated
KILL_AFTER_S = 1.0  # and this long after that before it is killed


class RetiredProcesses:
    """Camera processes told to stop. ``reap`` never waits (it runs on the acquisition path): it forgets
    those that ended and ends by force those that take too long; ``stop_all`` waits, for a close."""

    def __init__(self) -> None:
        self._processes: list[tuple[CameraProcess, int]] = []

    def add(self, process: CameraProcess, since_ns: int) -> None:
        self._processes.append((process, since_ns))

    def reap(self, now_ns: int) -> None:
        kept = []
        for process, since_ns in self._processes:
            if process.reap():
                continue
            age_s = (now_ns - since_ns) / 1e9
            if age_s > RETIRE_S + KILL_AFTER_S:
                process.kill()
            elif age_s > RETIRE_S:
                process.terminate()
            kept.append((process, since_ns))
        self._processes = kept

    def stop_all(self, timeout_s: float) -> None:
        for process, _ in self._processes:
            process.stop(timeout_s)
        self._processes.clear()
