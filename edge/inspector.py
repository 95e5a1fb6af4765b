"""One frame in, one verdict out: detector, decision, deadline. Never raises for a bad frame.

``Inspector.inspect`` is what the inspect thread calls for every frame. Whatever goes wrong with
one frame (a corrupt image, a model run that fails, a bug) becomes an ERROR verdict with the reason,
logged with its traceback, and the loop goes on. A frame whose verdict would come after the
station's deadline is an ERROR "late": the model is not even run when the deadline has already
passed while the frame waited in the queue.

With an active product (edge/products/active.py) the frame is scored by the product (its map, its
score, ``product_ms`` in the latency stages) and decided with the product's thresholds; the verdict
names the product and its version. The product is read ONCE per frame, so a switch between two
frames never mixes two products in one verdict. ``patch_features`` are fetched only for a frame that
needs them (a product scoring with its memory, or an enrollment collecting parts).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Protocol

from edge.camera.frame import Frame
from edge.decision import (
    EXCEPTION,
    LATE,
    Decision,
    Thresholds,
    Verdict,
    decide,
    error_verdict,
    is_late,
    late,
)
from edge.errors import InpEdgeError
from edge.model.detector import Detector, Inference, Prepared
from edge.products.active import ActiveProduct, Snapshot
from edge.products.product import Product
from edge.products.scoring import Scored

log = logging.getLogger("inp_edge.inspect")
NO_PRODUCT = Snapshot(None, None, 0)


@dataclass(frozen=True)
class Inspected:
    verdict: Verdict
    inference: Inference | None  # None when the model did not run; with a product, its map is the product's
    pixel_threshold: float | None = None  # what the regions were found with (None: not decided)


class InspectObserver(Protocol):
    """Sees every inspected part on the inspect thread (enrollment, calibration): must be quick."""

    def wants_features(self) -> bool: ...

    def observe(
        self, verdict: Verdict, inference: Inference, scored: Scored | None, snapshot: Snapshot
    ) -> None: ...


@dataclass(frozen=True)
class _Decided:
    decision: Decision
    thresholds: Thresholds
    shown: Inference  # the inference whose map decided the regions (the product's map with a product)
    scored: Scored | None
    decide_ms: float


class Inspector:
    def __init__(
        self,
        detector: Detector,
        thresholds: Thresholds,
        deadline_ms: float,
        station: str = "",
        *,
        active: ActiveProduct | None = None,
        observer: InspectObserver | None = None,
        default_product: str | None = None,
    ) -> None:
        self.detector = detector
        self.thresholds = thresholds  # the station's own: used while no product is active
        self.deadline_ms = deadline_ms
        self.station = station
        self.active = active
        self.observer = observer
        self.default_product = default_product  # named by a verdict decided without a product

    def prepare(self, frame: Frame) -> Prepared | Exception:
        """The pre-processing, ahead of ``inspect`` (the acquire thread does it, overlapping the model
        run of the part before); a failure is returned, to become that part's ERROR in ``inspect``."""
        try:
            return self.detector.prepare(frame)
        except Exception as exc:  # noqa: BLE001 - reported by inspect() as this frame's verdict
            return exc

    def inspect(self, frame: Frame, prepared: Prepared | Exception | None = None) -> Inspected:
        snapshot = self.active.snapshot() if self.active is not None else NO_PRODUCT  # ONE per frame
        dequeued_ns = time.monotonic_ns()
        queue_ms = (dequeued_ns - frame.t_capture_ns) / 1e6
        if is_late(frame.t_capture_ns, dequeued_ns, self.deadline_ms):
            reason = f"{LATE}: {queue_ms:.1f} ms waiting > deadline {self.deadline_ms:g} ms (not inspected)"
            verdict = error_verdict(
                frame.frame_id, frame.t_capture_ns, frame.wall_time_ns, reason, frame.meta
            )
            return Inspected(self._tagged(_with_latency(verdict, {"queue_ms": queue_ms}), snapshot), None)
        if self.active is not None:
            self.active.inspected(snapshot.generation, frame.frame_id)
        try:
            if prepared is None:
                prepared = self.detector.prepare(frame)
            elif isinstance(prepared, Exception):
                raise prepared
            inference = self.detector.run(prepared, features=self._want_features(snapshot))
            decided = self._decide(inference, snapshot)
        except InpEdgeError as exc:
            return self._failed(frame, queue_ms, exc.message, snapshot, exc_info=False)
        except Exception as exc:  # noqa: BLE001 - one bad frame must not stop the line; logged with traceback
            return self._failed(frame, queue_ms, f"{type(exc).__name__}: {exc}", snapshot, exc_info=True)
        inspected = self._inspected(frame, queue_ms, inference, decided, snapshot)
        self._observe(inspected.verdict, inference, decided.scored, snapshot)
        return inspected

    def _want_features(self, snapshot: Snapshot) -> bool:
        return snapshot.needs_features or (self.observer is not None and self.observer.wants_features())

    def _decide(self, inference: Inference, snapshot: Snapshot) -> _Decided:
        """The decision with the snapshot's product (its map, score and thresholds) or the station's."""
        if snapshot.product is None or snapshot.scorer is None:
            started_ns = time.perf_counter_ns()
            t = self.thresholds
            decision = decide(inference.raw_score, inference.anomaly_map, inference.geometry, t)
            return _Decided(decision, t, inference, None, (time.perf_counter_ns() - started_ns) / 1e6)
        scored = snapshot.scorer.score(inference)
        t = product_thresholds(snapshot.product, self.thresholds)
        started_ns = time.perf_counter_ns()
        decision = decide(scored.score, scored.product_map, inference.geometry, t)
        decide_ms = (time.perf_counter_ns() - started_ns) / 1e6
        return _Decided(decision, t, replace(inference, anomaly_map=scored.product_map), scored, decide_ms)

    def _inspected(
        self, frame: Frame, queue_ms: float, inference: Inference, decided: _Decided, snapshot: Snapshot
    ) -> Inspected:
        done_ns = time.monotonic_ns()
        stages = {
            "queue_ms": queue_ms,
            "preprocess_ms": inference.preprocess_ms,
            "model_ms": inference.model_ms,
        }
        if decided.scored is not None:
            stages["product_ms"] = decided.scored.scoring_ms
        stages["decide_ms"] = decided.decide_ms
        stages["inspect_total_ms"] = (done_ns - frame.t_capture_ns) / 1e6
        decision, thresholds = decided.decision, decided.thresholds
        verdict = Verdict(
            frame_id=frame.frame_id,
            verdict=decision.verdict,
            t_capture_ns=frame.t_capture_ns,
            wall_time_ns=frame.wall_time_ns,
            score=decision.score,
            raw_score=decision.raw_score,
            threshold=thresholds.image,
            threshold_source=thresholds.source,
            regions=decision.regions,
            latency_ms=stages,
            frame_meta=dict(frame.meta),
        )
        if is_late(frame.t_capture_ns, done_ns, self.deadline_ms):
            verdict = late(verdict, stages["inspect_total_ms"], self.deadline_ms)
        return Inspected(self._tagged(verdict, snapshot), decided.shown, thresholds.pixel)

    def _observe(
        self, verdict: Verdict, inference: Inference, scored: Scored | None, snapshot: Snapshot
    ) -> None:
        if self.observer is None:
            return
        try:
            self.observer.observe(verdict, inference, scored, snapshot)
        except Exception:  # noqa: BLE001 - enrollment / calibration must never cost a verdict
            log.exception(
                "station %s frame %s: enrollment / calibration hand-off failed",
                self.station,
                verdict.frame_id,
            )

    def _tagged(self, verdict: Verdict, snapshot: Snapshot) -> Verdict:
        """The verdict with the product it was inspected with (none: the station's own thresholds, and
        the configured name, so a switch that lands while the verdict is published cannot relabel it)."""
        product = snapshot.product
        if product is None:
            return verdict if self.default_product is None else replace(verdict, product=self.default_product)
        return replace(verdict, product=product.name, product_version=product.version)

    def _failed(
        self, frame: Frame, queue_ms: float, text: str, snapshot: Snapshot, *, exc_info: bool
    ) -> Inspected:
        log.error(
            "station %s frame %s: inspection failed: %s",
            self.station,
            frame.frame_id,
            text,
            exc_info=exc_info,
        )
        reason = f"{EXCEPTION}: {text}"[:300]
        verdict = error_verdict(frame.frame_id, frame.t_capture_ns, frame.wall_time_ns, reason, frame.meta)
        return Inspected(self._tagged(_with_latency(verdict, {"queue_ms": queue_ms}), snapshot), None)


def product_thresholds(product: Product, station: Thresholds) -> Thresholds:
    """What a part is decided with under ``product``: its thresholds, the station's minimum region area
    when the product sets none (an area in frame pixels is the station's), its source naming it."""
    t = product.thresholds
    if t.min_region_area_px == 0 and station.min_region_area_px:
        t = replace(t, min_region_area_px=station.min_region_area_px)
    return replace(t, source=f"product {product.label()}: {t.source}")


def _with_latency(verdict: Verdict, stages: dict[str, float]) -> Verdict:
    return replace(verdict, latency_ms=stages)
