"""One frame in, one verdict out: detector, decision, deadline. Never raises for a bad frame.

``Inspector.inspect`` is what the inspect thread calls for every frame. Whatever goes wrong with
one frame (a corrupt image, a model run that fails, a bug) becomes an ERROR verdict with the reason,
logged with its traceback, and the loop goes on. A frame whose verdict would come after the
station's deadline is an ERROR "late": the model is not even run when the deadline has already
passed while the frame waited in the queue.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from edge.camera.frame import Frame
from edge.decision import (
    EXCEPTION,
    LATE,
    Thresholds,
    Verdict,
    decide,
    error_verdict,
    is_late,
    late,
)
from edge.errors import InpEdgeError
from edge.model.detector import Detector, Inference, Prepared

log = logging.getLogger("inp_edge.inspect")


@dataclass(frozen=True)
class Inspected:
    verdict: Verdict
    inference: Inference | None  # None when the model did not run (late in queue, error)


class Inspector:
    def __init__(
        self, detector: Detector, thresholds: Thresholds, deadline_ms: float, station: str = ""
    ) -> None:
        self.detector = detector
        self.thresholds = thresholds
        self.deadline_ms = deadline_ms
        self.station = station

    def prepare(self, frame: Frame) -> Prepared | Exception:
        """The pre-processing, ahead of ``inspect`` (the acquire thread does it, overlapping the model
        run of the part before); a failure is returned, to become that part's ERROR in ``inspect``."""
        try:
            return self.detector.prepare(frame)
        except Exception as exc:  # noqa: BLE001 - reported by inspect() as this frame's verdict
            return exc

    def inspect(self, frame: Frame, prepared: Prepared | Exception | None = None) -> Inspected:
        dequeued_ns = time.monotonic_ns()
        queue_ms = (dequeued_ns - frame.t_capture_ns) / 1e6
        if is_late(frame.t_capture_ns, dequeued_ns, self.deadline_ms):
            reason = f"{LATE}: {queue_ms:.1f} ms waiting > deadline {self.deadline_ms:g} ms (not inspected)"
            verdict = error_verdict(
                frame.frame_id, frame.t_capture_ns, frame.wall_time_ns, reason, frame.meta
            )
            return Inspected(_with_latency(verdict, {"queue_ms": queue_ms}), None)
        try:
            if prepared is None:
                prepared = self.detector.prepare(frame)
            elif isinstance(prepared, Exception):
                raise prepared
            inference = self.detector.run(prepared)
            decide_start_ns = time.perf_counter_ns()
            decision = decide(inference.raw_score, inference.anomaly_map, inference.geometry, self.thresholds)
            decide_ms = (time.perf_counter_ns() - decide_start_ns) / 1e6
        except InpEdgeError as exc:
            return self._failed(frame, queue_ms, exc.message, exc_info=False)
        except Exception as exc:  # noqa: BLE001 - one bad frame must not stop the line; logged with traceback
            return self._failed(frame, queue_ms, f"{type(exc).__name__}: {exc}", exc_info=True)
        done_ns = time.monotonic_ns()
        stages = {
            "queue_ms": queue_ms,
            "preprocess_ms": inference.preprocess_ms,
            "model_ms": inference.model_ms,
            "decide_ms": decide_ms,
            "inspect_total_ms": (done_ns - frame.t_capture_ns) / 1e6,
        }
        verdict = Verdict(
            frame_id=frame.frame_id,
            verdict=decision.verdict,
            t_capture_ns=frame.t_capture_ns,
            wall_time_ns=frame.wall_time_ns,
            score=decision.score,
            raw_score=decision.raw_score,
            threshold=self.thresholds.image,
            threshold_source=self.thresholds.source,
            regions=decision.regions,
            latency_ms=stages,
            frame_meta=dict(frame.meta),
        )
        if is_late(frame.t_capture_ns, done_ns, self.deadline_ms):
            verdict = late(verdict, stages["inspect_total_ms"], self.deadline_ms)
        return Inspected(verdict, inference)

    def _failed(self, frame: Frame, queue_ms: float, text: str, *, exc_info: bool) -> Inspected:
        log.error(
            "station %s frame %s: inspection failed: %s",
            self.station,
            frame.frame_id,
            text,
            exc_info=exc_info,
        )
        reason = f"{EXCEPTION}: {text}"[:300]
        verdict = error_verdict(frame.frame_id, frame.t_capture_ns, frame.wall_time_ns, reason, frame.meta)
        return Inspected(_with_latency(verdict, {"queue_ms": queue_ms}), None)


def _with_latency(verdict: Verdict, stages: dict[str, float]) -> Verdict:
    from dataclasses import replace

    return replace(verdict, latency_ms=stages)
