"""What happens after a verdict is out: the overlay JPEG and the archive hand-over (best effort).

Runs on the output worker thread (edge/workers.py), one job per published verdict. Overlays of
fails and errors are always drawn. A pass's overlay is skipped when the station is busy, i.e. when
parts were already waiting in the inspect queue as this one was decided: drawing and encoding it
costs CPU the next part's inspection needs (``overlay_ms`` keeps the recent render + encode times;
``inp-edge bench-pipeline`` reports them beside the model's). Skipped overlays are counted (``overlay_skipped_busy``); a pass the archive keeps
(a sample, a capture) is drawn anyway.
"""

from __future__ import annotations

import logging
import time
from collections import deque

from edge.archive import should_archive
from edge.decision import PASS
from edge.health import Health
from edge.outbox import Outbox
from edge.overlay import OverlayError, OverlayStyle, overlay_jpeg
from edge.pipeline import OutputJob
from edge.workers import Worker

log = logging.getLogger("inp_edge.output")
DEFAULT_STYLE = OverlayStyle()


class OutputStage:
    def __init__(
        self,
        outbox: Outbox,
        health: Health,
        pixel_threshold: float,
        *,
        publish_overlays: bool = True,
        archive_worker: Worker | None = None,
        sample_pass_every: int = 0,
        style: OverlayStyle = DEFAULT_STYLE,
        station: str = "",
    ) -> None:
        self.outbox = outbox
        self.health = health
        self.pixel_threshold = pixel_threshold
        self.publish_overlays = publish_overlays
        self.archive_worker = archive_worker
        self.sample_pass_every = sample_pass_every
        self.style = style
        self.station = station
        self._passes = 0
        self.overlay_ms: deque[float] = deque(maxlen=1000)  # render + JPEG time of recent overlays

    def __call__(self, job: OutputJob) -> None:
        verdict = job.inspected.verdict.verdict
        reason = self._archive_reason(job)
        wanted = self.publish_overlays and not (verdict == PASS and job.busy)
        if self.publish_overlays and not wanted:
            self.health.count("overlay_skipped_busy")
        if not wanted and reason is None:
            return
        jpeg = self._overlay(job)
        if jpeg is not None and wanted:
            self.outbox.publish_overlay(job.header, jpeg)
        if reason is not None and not self.archive_worker.offer((job, jpeg, reason)):
            self.health.count("archive_dropped")

    def _archive_reason(self, job: OutputJob) -> str | None:
        if self.archive_worker is None:
            return None
        verdict = job.inspected.verdict.verdict
        if verdict == PASS:
            self._passes += 1
        return should_archive(verdict, self._passes - 1, self.sample_pass_every, job.capture_requested)

    def _overlay(self, job: OutputJob) -> bytes | None:
        inspected = job.inspected
        started_ns = time.perf_counter_ns()
        # the threshold this part was decided with (an active product's), else the station's
        pixel = self.pixel_threshold if inspected.pixel_threshold is None else inspected.pixel_threshold
        try:
            jpeg = overlay_jpeg(job.frame.image, inspected.inference, inspected.verdict, pixel, self.style)
            self.overlay_ms.append((time.perf_counter_ns() - started_ns) / 1e6)
            return jpeg
        except OverlayError as exc:
            self.health.count("overlay_failed")
            log.warning("station %s frame %s: no overlay: %s", self.station, job.frame.frame_id, exc)
            return None
