"""The acquire / inspect loops: bounded queues, overrun and deadline policy, a verdict for every part.

::

    acquire thread   source.grab(timeout) → ROI + pre-processing (overlapping the model run of the part
                     before) → inspect queue (bounded). Full queue: the part becomes an ERROR
                     "overrun" verdict at once; never a silent drop.
    inspect thread   Inspector.inspect(frame) → Outbox.publish_verdict (urgent) → output job (overlay,
                     archive: best effort, dropped and counted when the output worker falls behind)

``run`` returns when the source is exhausted, ``max_parts`` parts were taken, or ``stop()`` was
called (a signal handler calls it). Frames already queued are inspected and published before it
returns; the whole stop takes well under 5 s with the default queue sizes.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from edge.camera.frame import Frame, FrameSource, SourceExhausted
from edge.decision import OVERRUN, Verdict, error_verdict
from edge.errors import SourceError
from edge.health import RUNNING, STOPPING, Health
from edge.inspector import Inspected, Inspector
from edge.workers import BEST_EFFORT_NICE, Worker

log = logging.getLogger("inp_edge.pipeline")
_END = object()


class Outbox(Protocol):
    """Where verdicts go: assigns the gap-free seq and publishes (edge/outbox.py)."""

    def publish_verdict(self, verdict: Verdict) -> tuple[int, dict[str, Any]]: ...


@dataclass(frozen=True)
class OutputJob:
    """What the output worker gets for one published verdict: overlay and archive work."""

    seq: int
    header: dict[str, Any]
    frame: Frame
    inspected: Inspected
    capture_requested: bool
    busy: bool = False  # parts were waiting in the inspect queue when this one was decided


@dataclass(frozen=True)
class PipelineSettings:
    inspect_queue: int = 4
    output_queue: int = 64
    grab_timeout_s: float = 0.2  # how often the acquire loop notices a stop while the line is quiet
    max_parts: int = 0  # 0 = until the source ends or a stop
    drain_timeout_s: float = 3.0  # budget for finishing queued work on stop


class Pipeline:
    def __init__(
        self,
        source: FrameSource,
        inspector: Inspector,
        outbox: Outbox,
        output_handler: Callable[[OutputJob], None] | None,
        health: Health,
        settings: PipelineSettings = PipelineSettings(),
    ) -> None:
        self.source = source
        self.inspector = inspector
        self.outbox = outbox
        self.health = health
        self.settings = settings
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=settings.inspect_queue)
        self._stop = threading.Event()
        self._captures = 0
        self._lock = threading.Lock()
        self._output = (
            Worker("output", output_handler, settings.output_queue, nice=BEST_EFFORT_NICE)
            if output_handler
            else None
        )
        self.taken = 0
        self.fatal: BaseException | None = None

    def stop(self) -> None:
        self._stop.set()

    def request_capture(self) -> None:
        """Archive the next inspected part with reason "capture" (control socket)."""
        with self._lock:
            self._captures += 1

    def run(self) -> None:
        """Run until the source ends, max_parts, or stop(); then drain and return."""
        if self._output is not None:
            self._output.start()
        inspect_thread = threading.Thread(target=self._inspect_loop, name="inspect", daemon=True)
        inspect_thread.start()
        self.health.set_state(RUNNING)
        try:
            self._acquire_loop()
        finally:
            self.health.set_state(STOPPING)
            self._finish(inspect_thread)

    def _acquire_loop(self) -> None:
        limit = self.settings.max_parts
        while not self._stop.is_set() and (limit == 0 or self.taken < limit):
            try:
                frame = self.source.grab(self.settings.grab_timeout_s)
            except SourceExhausted:
                log.info("source %s has no more frames", self.source.name)
                return
            except SourceError as exc:
                self.fatal = exc
                log.error("source %s failed: %s", self.source.name, exc)
                return
            self.health.set_camera(self.source.connected())
            self.health.progress()
            if frame is None:
                continue
            self.taken += 1
            if frame.meta.get(
                "error"
            ):  # an event from the source (lost camera, missed trigger): no part image
                self._publish(
                    error_verdict(
                        frame.frame_id,
                        frame.t_capture_ns,
                        frame.wall_time_ns,
                        str(frame.meta["error"]),
                        frame.meta,
                    )
                )
                continue
            self.health.count("frames")
            self._enqueue(frame, self.inspector.prepare(frame))

    def _enqueue(self, frame: Frame, prepared: object) -> None:
        try:
            self._queue.put_nowait((frame, prepared))
        except queue.Full:
            waiting = self._queue.qsize()
            reason = f"{OVERRUN}: inspect queue full ({waiting} parts waiting)"
            log.warning("frame %s: %s", frame.frame_id, reason)
            self.health.count("overruns")
            verdict = error_verdict(
                frame.frame_id, frame.t_capture_ns, frame.wall_time_ns, reason, frame.meta
            )
            self._publish(verdict)

    def _inspect_loop(self) -> None:
        while (item := self._queue.get()) is not _END:
            frame, prepared = item
            self.health.inspecting(True)
            inspected = self.inspector.inspect(frame, prepared)  # never raises: a bad frame is an ERROR
            self.health.inspecting(False)
            try:
                seq, header = self._publish(inspected.verdict)
            except Exception as exc:  # noqa: BLE001 - publishing is broken: stop the service, exit non-zero
                log.exception("frame %s: the verdict could not be published; stopping", frame.frame_id)
                self.fatal = exc
                self._stop.set()
                return
            if self._output is not None:
                job = OutputJob(
                    seq, header, frame, inspected, self._take_capture(), busy=not self._queue.empty()
                )
                if not self._output.offer(job):
                    self.health.count("output_dropped")

    def _publish(self, verdict: Verdict) -> tuple[int, dict[str, Any]]:
        seq, header = self.outbox.publish_verdict(verdict)
        self.health.verdict(seq, verdict.verdict, verdict.reason)
        return seq, header

    def _take_capture(self) -> bool:
        with self._lock:
            if self._captures:
                self._captures -= 1
                return True
            return False

    def _finish(self, inspect_thread: threading.Thread) -> None:
        deadline = time.monotonic() + self.settings.drain_timeout_s
        while inspect_thread.is_alive():  # the inspect thread takes queued frames first, then _END
            try:
                self._queue.put(_END, timeout=0.05)
                break
            except queue.Full:
                if time.monotonic() > deadline:
                    break
        inspect_thread.join(max(0.1, deadline - time.monotonic()))
        if inspect_thread.is_alive():
            log.error("inspect thread did not finish within %.1f s", self.settings.drain_timeout_s)
        if self._output is not None and not self._output.close(max(0.1, deadline - time.monotonic())):
            log.warning(
                "output worker still busy at stop: %d overlay/archive jobs left", self._output.pending()
            )

    def output_counters(self) -> dict[str, int]:
        if self._output is None:
            return {}
        return {"done": self._output.done, "dropped": self._output.dropped, "failed": self._output.failed}
