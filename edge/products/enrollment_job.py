"""One enrollment through the running service: collect parts on the inspect thread, build elsewhere.

States: ``collecting`` → ``building`` → ``done`` | ``failed``; or ``collecting`` → ``cancelled``.
``offer`` is what the inspect thread calls for each inspected part: while collecting, it keeps the
part's model outputs (a reference to the arrays onnxruntime returned: no copy, no computation) in a
list bounded by the number of shots asked for. When the last shot is in (or ``stop`` says so) the
product is built by ``build`` on a worker thread of its own, never on the inspect thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edge.errors import InpEdgeError
from edge.model.detector import Inference
from edge.products.enroll import Enrolled, Shot

log = logging.getLogger("inp_edge.enroll")

COLLECTING, BUILDING, DONE, FAILED, CANCELLED = "collecting", "building", "done", "failed", "cancelled"
MAX_SHOTS = 64  # parts one enrollment keeps in memory (maps and patch features of each)


@dataclass(frozen=True)
class EnrollPlan:
    """What ``enroll_start`` asked for."""

    product: str
    shots: int
    fusion: str
    max_memory_tokens: int
    activate: bool


@dataclass
class _Outcome:
    version: int | None = None
    enrolled: Enrolled | None = None
    error: str = ""
    fix: str = ""
    activated: bool = False
    frames: list[int] = field(default_factory=list)


# build(plan, shots) -> (saved version, enrolled, activated)
Builder = Callable[[EnrollPlan, list[Shot]], tuple[int, Enrolled, bool]]


class EnrollmentJob:
    def __init__(self, plan: EnrollPlan, build: Builder) -> None:
        self.plan = plan
        self._build = build
        self._lock = threading.Lock()
        self._shots: list[Shot] = []
        self._outcome = _Outcome()
        self._finished = threading.Event()
        self.state = COLLECTING
        self.started_s = time.monotonic()

    @property
    def collecting(self) -> bool:
        return self.state == COLLECTING

    @property
    def needs_features(self) -> bool:
        return self.plan.fusion != "inp"

    def offer(self, frame_id: int, inference: Inference) -> None:
        """One inspected part (not an error) from the inspect thread; cheap."""
        if self.state != COLLECTING or (self.needs_features and inference.patch_features is None):
            return  # a part inspected before the features were asked for does not count
        with self._lock:
            if self.state != COLLECTING:
                return
            self._shots.append(Shot(f"frame {frame_id}", inference.anomaly_map, inference.patch_features))
            self._outcome.frames.append(int(frame_id))
            if len(self._shots) >= self.plan.shots:
                self._start_build()

    def stop(self, *, cancel: bool) -> None:
        """Stop collecting: cancel, or build from the parts already in (cancel when there are none)."""
        with self._lock:
            if self.state != COLLECTING:
                return
            if cancel or not self._shots:
                self.state = CANCELLED
                self._shots = []
                self._finished.set()
                log.info("enrollment of %s cancelled", self.plan.product)
                return
            self._start_build()

    def wait(self, timeout_s: float) -> bool:
        """Whether the job finished (done, failed, cancelled) within ``timeout_s``."""
        return self._finished.wait(max(0.0, timeout_s))

    def _start_build(self) -> None:  # with self._lock held
        self.state = BUILDING
        shots, self._shots = self._shots, []
        log.info("enrollment of %s: %d parts in, building", self.plan.product, len(shots))
        thread = threading.Thread(target=self._run_build, args=(shots,), name="enroll-build", daemon=True)
        thread.start()

    def _run_build(self, shots: list[Shot]) -> None:
        try:
            version, enrolled, activated = self._build(self.plan, shots)
        except InpEdgeError as exc:
            self._fail(exc.message, exc.fix)
        except Exception as exc:  # noqa: BLE001 - a bug: the job says failed, the traceback goes to the log
            log.exception("enrollment of %s failed", self.plan.product)
            self._fail(f"{type(exc).__name__}: {exc}", "see the service log (a bug)")
        else:
            with self._lock:
                self._outcome.version, self._outcome.enrolled = version, enrolled
                self._outcome.activated = activated
                self.state = DONE
            log.info("enrollment of %s done: v%d in %.1f s", self.plan.product, version, enrolled.build_s)
        finally:
            self._finished.set()

    def _fail(self, error: str, fix: str) -> None:
        log.error("enrollment of %s failed: %s", self.plan.product, error)
        with self._lock:
            self._outcome.error, self._outcome.fix = error, fix
            self.state = FAILED

    def status(self) -> dict[str, Any]:
        """The ``enroll_status`` reply fields."""
        with self._lock:
            outcome, state = self._outcome, self.state
            status: dict[str, Any] = {
                "state": state,
                "product": self.plan.product,
                "shots": self.plan.shots,
                "collected": len(outcome.frames),
                "frames": list(outcome.frames),
                "fusion": self.plan.fusion,
                "activate": self.plan.activate,
                "flagged": [],
                "shot_scores": [],
            }
        if outcome.enrolled is not None:
            enrolled = outcome.enrolled
            status["flagged"] = [
                {"label": f.label, "score": f.score, "reason": f.reason} for f in enrolled.flagged
            ]
            status["shot_scores"] = list(enrolled.shot_scores)
            if labels := _kept_labels(outcome.frames, enrolled):
                status["shot_labels"] = labels
            status["shot_labels"] = list(enrolled.shot_labels)
            status |= {
                "version": outcome.version,
                "build_s": enrolled.build_s,
                "activated": outcome.activated,
            }
            status["threshold"] = enrolled.product.thresholds.image
        if state == FAILED:
            status |= {"error": outcome.error, "fix": outcome.fix}
        return status


def _kept_labels(frames: list[int], enrolled: Enrolled) -> list[str]:
    """The labels of the parts ``shot_scores`` belong to (the flagged ones left out), when that is clear."""
    labels = [f"frame {frame_id}" for frame_id in frames]
    flagged = {flag.label for flag in enrolled.flagged}
    if flagged and len(flagged) < len(labels):
        labels = [label for label in labels if label not in flagged]
    return labels if len(labels) == len(enrolled.shot_scores) else []
