"""The camera process: open the camera, stream its frames into the ring, report what happens.

``camera_main`` is the entry point of the process the source starts (edge/camera/camera_process.py
says why a process and what the messages are). It loads the producers and the profile, opens the
device (trying again every 0.1 s, doubling up to the back-off cap, while it is not there; after
``MAX_OPEN_ATTEMPTS`` it ends and the source starts a fresh process, so a long outage cannot grow
one process), applies the profile and the trigger, starts acquisition, then says "ready". Each frame
is converted straight into a free slot of the ring; a frame that does not fit goes inline through
the pipe; with no free slot it is not converted at all (its buffer goes straight back to the driver)
and reported dropped. The camera is lost when a fetch fails, when
its access status changes, or, in free-run, when no frame came for ``frame_timeout_s``: the process
says so and ends. Software triggers are executed by the control thread as soon as they arrive.
"""

from __future__ import annotations

import collections
import importlib
import logging
import os
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from edge.camera.frame_ring import FrameRing
from edge.camera.genicam_device import DROP, Camera, CameraGone, Drop, Grabbed, open_harvester
from edge.camera.genicam_select import DeviceNotFound
from edge.camera.genicam_settings import FREE_RUN, GenICamSettings, ProcessOptions, producer_files
from edge.camera.profile import load_profile
from edge.errors import InpEdgeError

log = logging.getLogger("inp_edge.camera")
ACCESS_CHECK_S = 0.25  # how often an idle camera's access status is read
MAX_OPEN_ATTEMPTS = 300  # a process that waited this many times ends; a fresh one goes on looking
FIRST_BACKOFF_S = 0.1


def camera_main(
    inbox: Connection, outbox: Connection, settings: GenICamSettings, options: ProcessOptions
) -> None:
    """Entry point of the camera process."""
    _set_up_process(options)
    child = _Child(inbox, outbox, settings)
    try:
        child.run()
    except Exception as exc:  # noqa: BLE001 - a bug here: logged with its traceback, the source starts afresh
        log.exception("camera process failed")
        child.send("lost", f"the camera process failed: {type(exc).__name__}: {exc}")
    finally:
        child.close()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)  # skip harvesters' exit-time finalizers: they fail again on a device that is gone


def _set_up_process(options: ProcessOptions) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the service decides when to stop, and says so
    level = getattr(logging, options.log_level, logging.INFO)
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s [camera process] %(name)s: %(message)s"
    )
    if level > logging.DEBUG:  # harvesters logs a traceback for every producer error we already report
        import harvesters.core  # noqa: F401 - it sets its logger's level when imported

        logging.getLogger("harvesters.core").setLevel(logging.CRITICAL)
    if options.process_hook:
        module, _, function = options.process_hook.partition(":")
        getattr(importlib.import_module(module), function)()


class _Child:
    def __init__(self, inbox: Connection, outbox: Connection, settings: GenICamSettings) -> None:
        self.inbox, self.outbox, self.settings = inbox, outbox, settings
        self.stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: self.stop.set())
        self._send_lock = threading.Lock()
        self._free: collections.deque[int] = collections.deque()
        self._slot: int | None = None  # claimed for the frame being fetched, not yet handed over
        self.camera: Any = None
        self.harvester: Any = None
        self.ring: FrameRing | None = None
        threading.Thread(target=self._control_loop, name="camera-control", daemon=True).start()

    def send(self, *message: Any) -> None:
        with self._send_lock:
            try:
                self.outbox.send(message)
            except (BrokenPipeError, OSError):
                self.stop.set()

    def _control_loop(self) -> None:
        while not self.stop.is_set():
            try:
                message = self.inbox.recv()
            except (EOFError, OSError):  # the service is gone
                self.stop.set()
                return
            if message[0] == "free":
                self._free.append(message[1])
            elif message[0] == "trigger":
                self._trigger(message[1])
            elif message[0] == "stop":
                self.stop.set()

    def _trigger(self, seq: int) -> None:
        camera = self.camera
        if camera is None:
            self.send("trigger-failed", seq, "the camera is not open")
            return
        try:
            camera.execute_trigger()
        except Exception as exc:  # noqa: BLE001 - reported to the source, which counts a missed trigger
            self.send("trigger-failed", seq, str(exc))

    def run(self) -> None:
        try:
            profile = load_profile(self.settings.profile) if self.settings.profile else None
            self.harvester = open_harvester(producer_files(self.settings.producers))
            if not self._open(profile):
                return
        except InpEdgeError as exc:
            self.send("fatal", exc.message, exc.fix)
            return
        self._stream()

    def _open(self, profile: Any) -> bool:
        """Open the camera, trying again while it is not there; False when stopped or given up."""
        backoff_s, said = FIRST_BACKOFF_S, ""
        for _ in range(MAX_OPEN_ATTEMPTS):
            if self.stop.is_set():
                return False
            try:
                self.camera = Camera.open(self.harvester, self.settings, profile)
                break
            except DeviceNotFound as exc:
                if exc.message != said:
                    self.send("waiting", exc.message)
                    said = exc.message
            if self.stop.wait(backoff_s):
                return False
            backoff_s = min(2 * backoff_s, self.settings.reconnect_backoff_max_s)
            self.harvester.update()
        else:
            self.send("gave-up", f"no camera after {MAX_OPEN_ATTEMPTS} attempts; {said}")
            return False
        return True

    def _arm(self) -> None:
        """Start acquisition, then tell the source the camera is ready (streaming, or armed for triggers)."""
        shape = self.camera.expected_shape()
        self.ring = FrameRing.create(int(np.prod(shape)), max(2, self.settings.buffers))
        self._free.extend(range(self.ring.slots))
        self.camera.start()
        self.send("ring", str(self.ring.path), self.ring.slot_bytes, self.ring.slots)
        self.send("ready", self._info(shape))

    def _info(self, shape: tuple[int, ...]) -> dict[str, Any]:
        summary = self.camera.summary
        return {
            "label": summary.label, "vendor": summary.vendor, "model": summary.model,
            "serial_number": summary.serial_number, "pixel_format": self.camera.node_pixel_format,
            "shape": list(shape), "pid": os.getpid(), "frame_rate": self.camera.frame_rate(),
        }  # fmt: skip

    def _stream(self) -> None:
        last_frame_s = last_check_s = time.monotonic()
        try:
            self._arm()
            while not self.stop.is_set():
                if self._step():
                    last_frame_s = time.monotonic()
                    continue
                now_s = time.monotonic()
                if now_s - last_check_s >= ACCESS_CHECK_S:
                    last_check_s = now_s
                    if reason := self.camera.lost_reason():
                        raise CameraGone(reason)
                if (
                    self.settings.trigger.mode == FREE_RUN
                    and now_s - last_frame_s > self.settings.frame_timeout_s
                ):
                    raise CameraGone(f"no frame for {now_s - last_frame_s:.1f} s in free-run")
        except CameraGone as exc:
            self.send("lost", str(exc))
        except InpEdgeError as exc:  # a frame this camera cannot deliver usefully (its pixel format)
            self.send("fatal", exc.message, exc.fix)

    def _step(self) -> bool:
        """Fetch once; True when a frame came (delivered, or dropped and reported)."""
        try:
            grabbed = self.camera.fetch(self.settings.fetch_timeout_s, self._claim)
            if grabbed is not None:
                self._deliver(grabbed)
            return grabbed is not None
        finally:
            if self._slot is not None:  # claimed and not handed over: no frame came, or it failed
                self._free.append(self._slot)
                self._slot = None

    def _claim(self, shape: tuple[int, ...]) -> np.ndarray | Drop | None:
        """Where a frame of ``shape`` goes: a free slot; None (inline) when it does not fit one; DROP
        when every slot is taken (the source has not copied them out yet)."""
        if self.ring is None or not self.ring.fits(shape):
            return None
        try:
            self._slot = self._free.popleft()
        except IndexError:
            return DROP
        return self.ring.view(self._slot, shape)

    def _deliver(self, grabbed: Grabbed) -> None:
        meta = {
            "block_id": grabbed.block_id, "camera_timestamp_ns": grabbed.camera_timestamp_ns,
            "t_ns": grabbed.t_ns, "wall_ns": grabbed.wall_ns, "pixel_format": grabbed.pixel_format,
        }  # fmt: skip
        if grabbed.image is None:
            self.send("dropped", meta)
        elif self._slot is not None:
            slot, self._slot = self._slot, None  # the source's now; it sends "free" once it copied it
            self.send("frame", slot, grabbed.image.shape, meta, None)
        else:
            self.send("frame", -1, grabbed.image.shape, meta, grabbed.image.tobytes())

    def close(self) -> None:
        self.stop.set()
        if self.camera is not None:
            self.camera.close()
            self.camera = None
        if self.harvester is not None:
            try:
                self.harvester.reset()
            except Exception as exc:  # noqa: BLE001 - a lost device fails to release; the process ends anyway
                log.debug("releasing the producers failed: %s", exc)
        if self.ring is not None:
            self.ring.close()
            self.ring.unlink()
