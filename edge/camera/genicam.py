"""``GenICamSource``: a GenICam line camera as a frame source that survives the line.

The camera runs in a supervised child process (edge/camera/camera_process.py); this side owns the
accounting. ``grab(timeout_s)`` returns the next frame, or an *event frame*: a ``Frame`` whose
``meta["error"]`` holds an ERROR verdict reason (``"<reason>: detail"``) and which must not be
inspected (its image is empty, or the stale image): the pipeline publishes it as an ERROR verdict.

- ``stale-frame``: a frame whose block id (without one: camera timestamp) goes backwards, or (software trigger)
  that no trigger was waiting for: an older buffer.
- ``missed-trigger``: a software trigger, or a part announced with ``announce_part``, that got no
  frame within ``trigger.timeout_s`` (the camera ignored a trigger that came too fast, a frame was
  lost on the way). Three software triggers in a row, each sent after the last frame came, that get
  no frame count as a lost camera (a burst faster than the camera can take is not).
- ``camera-lost``: parts lost while the camera was away, or frames lost on the way (block-id gap).
  Triggered: each waiting trigger or part is reported with its part id. Free-run: one event when the
  camera is back, with the count from the block ids when they go on, else estimated from the frame
  rate; the first frame after the return carries ``reconnected: true`` and ``lost_frames``.
- ``overrun``: the camera process had a frame and no free slot to hand it over.

A lost camera (the process reports it, or ends) is looked for again at once; the new process tries
every 0.1 s doubling up to ``reconnect_backoff_max_s``. Meanwhile ``grab`` returns None within its
timeout and ``connected()`` is False. A camera that came back but cannot be used as configured (its
profile refused, a pixel format the model input cannot be made from) makes ``grab`` raise
``SourceError``: the service stops with an error and systemd starts it again. ``trigger(part_id)``
sends a software trigger;
``announce_part(part_id)`` queues the id of the next part (matched in order; the line sends it
ahead of the trigger). Both, and ``status()``, may be called from another thread than ``grab``: the
ledger and the counters change only under the source's lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

import numpy as np

from edge.camera.camera_process import CameraProcess, RetiredProcesses
from edge.camera.frame import Frame
from edge.camera.genicam_events import NO_IMAGE, RateMeter, block_id, event_frame, frame_meta, outage_count
from edge.camera.genicam_settings import FREE_RUN, SOFTWARE, GenICamSettings, ProcessOptions, producer_files
from edge.camera.profile import load_profile
from edge.camera.triggers import FrameMatch, TriggerLedger, Waiting
from edge.decision import CAMERA_LOST, MISSED_TRIGGER, OVERRUN, STALE
from edge.errors import SourceError

log = logging.getLogger("inp_edge.camera")
MISSED_IN_A_ROW_IS_LOSS = 3
SLICE_S = 0.05  # grab wakes at least this often to expire triggers and supervise the process
COUNTERS = ("frames", "triggers", "missed_triggers", "stale_frames", "lost_frames", "overruns", "losses",
            "trigger_failures")  # fmt: skip


class GenICamSource:
    def __init__(self, settings: GenICamSettings, options: ProcessOptions | None = None) -> None:
        producer_files(settings.producers)  # cheap checks first, here; the camera process loads them
        if settings.profile:
            load_profile(settings.profile)
        self.settings = settings
        self.options = options or ProcessOptions()
        self.mode = settings.trigger.mode
        self.name = f"genicam {settings.device.describe()} ({self.mode})"
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)  # changed under _lock only
        self._lock = threading.Lock()
        self._ledger = TriggerLedger(self.mode, int(settings.trigger.timeout_s * 1e9))
        self._out: deque[Frame] = deque()
        self._process: CameraProcess | None = None
        self._retired = RetiredProcesses()
        self._connected = False
        self._camera: dict[str, Any] = {}
        self._sessions = 0
        self._respawn_at_ns = 0
        self._backoff_s = 0.0
        self._lost_at_ns: int | None = None
        self._last_block: int | None = None
        self._rate = RateMeter()
        self._returning = False
        self._outage_missed = 0
        self._in_a_row = 0  # missed software triggers in a row, each sent after the last frame came
        self._last_frame_ns = 0
        self._seq = 0
        self._said_waiting = ""

    # -- life cycle ---------------------------------------------------------------------------------

    def __enter__(self) -> GenICamSource:
        self._spawn()
        deadline_s = time.monotonic() + self.settings.start_timeout_s
        waiting = ""
        while not self._connected:
            remaining_s = deadline_s - time.monotonic()
            message = self._process.poll(min(remaining_s, 0.1)) if self._process and remaining_s > 0 else None
            if remaining_s <= 0:
                self._close()
                raise SourceError(
                    f"camera ({self.settings.device.describe()}) not ready within "
                    f"{self.settings.start_timeout_s:g} s: {waiting or 'the camera process did not answer'}",
                    fix="connect the camera, check source.genicam.device (inp-edge cameras), or raise "
                    "source.genicam.start_timeout_s",
                )
            if message is None:
                continue
            if message[0] in ("fatal", "lost", "gave-up"):
                self._close()
                raise SourceError(f"camera ({self.settings.device.describe()}): {message[1]}",
                                  fix=message[2] if message[0] == "fatal" else "")  # fmt: skip
            waiting = message[1] if message[0] == "waiting" else waiting
            self._handle(message)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._close()

    def _close(self) -> None:
        if self._process is not None:
            self._process.stop(2.0)
            self._process = None
        self._retired.stop_all(1.0)
        self._connected = False

    def _spawn(self) -> None:
        self._process = CameraProcess(self.settings, self.options)
        log.debug("camera process %s started", self._process.pid)

    def connected(self) -> bool:
        return self._connected

    # -- the line's requests ------------------------------------------------------------------------

    def trigger(self, part_id: str | None = None) -> None:
        """Send a software trigger (``part_id``: this part's id, else the oldest announced one)."""
        if self.mode != SOFTWARE:
            raise SourceError(f"{self.name}: a software trigger needs source.genicam.trigger.mode software",
                              fix="set trigger.mode: software, or let the line trigger the camera")  # fmt: skip
        now_ns = time.monotonic_ns()
        with self._lock:
            self.counters["triggers"] += 1
            if not self._connected:
                waiting = self._ledger.take_part(now_ns, part_id)
                self._report_missed([waiting], "the camera is away (software trigger not sent)")
                return
            self._ledger.trigger(now_ns, part_id)
            self._seq += 1
            seq, process = self._seq, self._process
        if process is not None:
            process.send("trigger", seq)

    def announce_part(self, part_id: str) -> None:
        """The id of the next part, sent by the line ahead of its trigger; echoed in its frame's meta."""
        if self.mode == FREE_RUN:
            raise SourceError(f"{self.name}: part ids are matched to triggers; the camera runs free",
                              fix="set source.genicam.trigger.mode to software or line")  # fmt: skip
        with self._lock:
            self._ledger.announce(str(part_id), time.monotonic_ns())

    # -- grab ---------------------------------------------------------------------------------------

    def grab(self, timeout_s: float) -> Frame | None:
        deadline_ns = time.monotonic_ns() + int(timeout_s * 1e9)
        while True:
            self._housekeeping(time.monotonic_ns())
            if self._out:
                return self._out.popleft()
            remaining_s = (deadline_ns - time.monotonic_ns()) / 1e9
            if remaining_s <= 0:
                return None
            wait_s = min(remaining_s, SLICE_S)
            message = self._process.poll(wait_s) if self._process is not None else time.sleep(wait_s)
            if message:
                self._handle(message)

    def _handle(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "frame":
            self._on_frame(self._process.take_image(message), message[3])
        elif kind == "dropped":
            self._on_frame(None, message[1])
        elif kind == "ready":
            self._on_ready(message[1])
        elif kind == "waiting" and message[1] != self._said_waiting:
            self._said_waiting = message[1]
            log.warning("camera not there yet: %s", message[1])
        elif kind == "trigger-failed":
            self._count("trigger_failures")
            log.warning("camera %s: software trigger %s failed: %s", self._label, message[1], message[2])
        elif kind == "lost":
            self._on_lost(message[1])
        elif kind == "fatal":  # the camera cannot be used as configured: retrying will not help
            self._retire()
            self._connected = False
            raise SourceError(f"camera {self._label}: {message[1]}", fix=message[2])
        elif kind == "gave-up":
            log.warning("camera %s: %s; starting a fresh camera process", self._label, message[1])
            self._retire()

    @property
    def _label(self) -> str:
        return self._camera.get("label", self.settings.device.describe())

    def _housekeeping(self, now_ns: int) -> None:
        with self._lock:
            missed = self._ledger.expire(now_ns)
            if missed:
                reason = f"no frame within {self.settings.trigger.timeout_s:g} s"
                self._report_missed(missed, reason if self._connected else "the camera is away")
        if self.mode == SOFTWARE and self._connected and self._in_a_row >= MISSED_IN_A_ROW_IS_LOSS:
            self._on_lost(f"{self._in_a_row} software triggers in a row got no frame")
        self._retired.reap(now_ns)
        if self._process is None and now_ns >= self._respawn_at_ns:
            self._spawn()

    # -- events -------------------------------------------------------------------------------------

    def _on_ready(self, info: dict[str, Any]) -> None:
        self._camera, self._connected, self._said_waiting = info, True, ""
        self._sessions += 1
        self._in_a_row = 0
        if self._sessions == 1:
            log.info("camera %s open: %s %s, %s", self._label, info["pixel_format"], info["shape"], self.mode)
            return
        away_s = (time.monotonic_ns() - (self._lost_at_ns or 0)) / 1e9
        self._returning = True
        log.warning("camera %s is back after %.1f s (session %d)", self._label, away_s, self._sessions)

    def _on_lost(self, reason: str) -> None:
        now_ns = time.monotonic_ns()
        self._retire()
        if self._connected:
            self._count("losses")
            self._lost_at_ns, self._outage_missed, self._backoff_s = now_ns, 0, 0.0
            log.warning("camera %s lost: %s; looking for it again", self._label, reason)
        else:
            self._backoff_s = min(max(0.1, 2 * self._backoff_s), self.settings.reconnect_backoff_max_s)
            log.warning(
                "camera %s could not be set up: %s; next try in %.1f s", self._label, reason, self._backoff_s
            )
        self._connected = False
        self._in_a_row = 0
        self._respawn_at_ns = now_ns + int(self._backoff_s * 1e9)
        with self._lock:
            self._report_missed(self._ledger.new_session(), "the camera went away before its frame")

    def _retire(self) -> None:
        if self._process is not None:
            self._process.send("stop")
            self._retired.add(self._process, time.monotonic_ns())
            self._process = None

    def _report_missed(self, missed: list[Waiting], why: str) -> None:
        """An ERROR event for each trigger / announced part without a frame (caller holds the lock)."""
        for waiting in missed:
            away = not self._connected
            reason = CAMERA_LOST if away else MISSED_TRIGGER
            self.counters["lost_frames" if away else "missed_triggers"] += 1
            self._outage_missed += away
            # a trigger sent after the last frame came and never answered: the camera may not listen any more
            self._in_a_row += waiting.kind == "trigger" and not away and waiting.t_ns > self._last_frame_ns
            what = "software trigger" if waiting.kind == "trigger" else "announced part"
            part = f" for part {waiting.part_id}" if waiting.part_id is not None else ""
            log.warning("camera %s: %s: %s%s: %s", self._label, reason, what, part, why)
            self._out.append(
                self._event(
                    reason, f"{what}{part}: {why}", t_ns=waiting.t_ns, meta={"part_id": waiting.part_id}
                )
            )

    def _on_frame(self, image: np.ndarray | None, raw: dict[str, Any]) -> None:
        """A frame from the camera; ``image`` None when the camera process had to drop it (overrun)."""
        with self._lock:
            match = self._ledger.frame(raw["block_id"], raw["camera_timestamp_ns"], raw["t_ns"])
            self._report_missed(list(match.missed), "its frame was lost on the way (block-id gap)")
            self.counters["frames"] += 1
            frame_id = block_id(raw, self.counters["frames"] - 1)
        meta = frame_meta(raw, match, camera=self._label, mode=self.mode, session=self._sessions)
        times = {"t_ns": raw["t_ns"], "wall_ns": raw["wall_ns"], "frame_id": frame_id}
        if match.stale:
            self._count("stale_frames")
            log.warning("camera %s frame %s: %s: %s", self._label, frame_id, STALE, match.stale)
            pixels = NO_IMAGE if image is None else image
            self._out.append(self._event(STALE, match.stale, image=pixels, meta=meta, **times))
            return
        self._in_a_row, self._last_frame_ns = 0, raw["t_ns"]
        meta |= self._losses_before(raw, match, frame_id)
        self._rate.update(raw["t_ns"])
        if image is not None:
            self._out.append(Frame(frame_id, raw["t_ns"], raw["wall_ns"], image, meta))
            return
        self._count("overruns")
        detail = "the camera process had no free slot for the frame (the source is not read fast enough)"
        log.warning("camera %s frame %s: %s: %s", self._label, frame_id, OVERRUN, detail)
        self._out.append(self._event(OVERRUN, detail, meta=meta, **times))

    def _losses_before(self, raw: dict[str, Any], match: FrameMatch, frame_id: int) -> dict[str, Any]:
        """Meta (and, free-run, an ERROR event) for frames lost before this one."""
        block = raw["block_id"]
        if self._returning:
            self._returning = False
            away_s = (raw["t_ns"] - (self._lost_at_ns or raw["t_ns"])) / 1e9
            rate_hz = self._rate.rate_hz or self._camera.get("frame_rate")
            lost, basis = outage_count(
                self.mode, block, self._last_block, away_s, rate_hz, self._outage_missed
            )
            if self.mode == FREE_RUN:
                self._report_lost(lost, f"the camera was away {away_s:.1f} s; {basis}", frame_id, raw)
            self._last_block = block
            return {"reconnected": True, "lost_frames": lost, "camera_away_s": round(away_s, 3)}
        self._last_block = block if block is not None else self._last_block
        if match.lost_frames > 0 and self.mode == FREE_RUN:
            self._report_lost(match.lost_frames, f"block-id gap before block {block}", frame_id, raw)
            return {"lost_before": match.lost_frames}
        return {}

    def _report_lost(self, lost: int, why: str, frame_id: int, raw: dict[str, Any]) -> None:
        self._count("lost_frames", lost)
        log.warning("camera %s: %s: %d frames lost: %s", self._label, CAMERA_LOST, lost, why)
        extra = {"lost_frames": lost, "before_frame_id": frame_id}
        times = {"t_ns": raw["t_ns"], "wall_ns": raw["wall_ns"]}
        self._out.append(self._event(CAMERA_LOST, f"{lost} frames lost: {why}", meta=extra, **times))

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counters[name] += n

    def _event(self, reason: str, detail: str, **fields: Any) -> Frame:
        extra = fields.pop("meta", {})
        meta = {"source": "genicam", "camera": self._label, "trigger": self.mode, **extra}
        return event_frame(reason, detail, meta, **fields)

    def status(self) -> dict[str, Any]:
        """Camera state and counters, for the heartbeat and the status request (a snapshot)."""
        with self._lock:
            counters, waiting = dict(self.counters), self._ledger.waiting
            connected, sessions, lost_at_ns = self._connected, self._sessions, self._lost_at_ns
        away_s = None
        if not connected and lost_at_ns is not None:
            away_s = round((time.monotonic_ns() - lost_at_ns) / 1e9, 3)
        return {
            "connected": connected, "camera": self._label, "trigger": self.mode, "sessions": sessions,
            "reconnects": max(0, sessions - 1), "away_s": away_s, "waiting_triggers": waiting, **counters,
        }  # fmt: skip
