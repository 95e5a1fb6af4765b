"""After the verdict: which overlays are drawn and published, what goes to the archive, when busy."""

from __future__ import annotations

import numpy as np
import pytest

from edge.camera.frame import Frame
from edge.decision import ERROR, FAIL, PASS, Verdict
from edge.health import Health
from edge.inspector import Inspected
from edge.output_stage import OutputStage
from edge.pipeline import OutputJob


class RecordingOutbox:
    def __init__(self) -> None:
        self.overlays: list[tuple[dict, bytes]] = []

    def publish_overlay(self, header: dict, jpeg: bytes) -> None:
        self.overlays.append((header, jpeg))


class RecordingWorker:
    def __init__(self) -> None:
        self.jobs: list[tuple] = []

    def offer(self, job: tuple) -> bool:
        self.jobs.append(job)
        return True


def job(seq: int, verdict: str, *, busy: bool, capture: bool = False) -> OutputJob:
    frame = Frame(seq, 0, 0, np.full((64, 64, 3), 100, np.uint8))
    inspected = Inspected(Verdict(seq, verdict, 0, 0, reason="x" if verdict == ERROR else ""), None)
    return OutputJob(seq, {"seq": seq, "station": "s1"}, frame, inspected, capture, busy=busy)


@pytest.mark.parametrize(
    ("verdict", "busy", "published"),
    [(PASS, False, True), (PASS, True, False), (FAIL, True, True), (ERROR, True, True), (FAIL, False, True)],
)
def test_only_pass_overlays_are_skipped_when_parts_are_waiting(
    verdict: str, busy: bool, published: bool
) -> None:
    outbox, health = RecordingOutbox(), Health()
    OutputStage(outbox, health, 0.5)(job(0, verdict, busy=busy))
    assert bool(outbox.overlays) is published
    assert outbox.overlays == [] or outbox.overlays[0][1].startswith(b"\xff\xd8")
    assert health.snapshot().counters.get("overlay_skipped_busy", 0) == (0 if published else 1)


def test_archived_passes_get_their_overlay_even_when_busy() -> None:
    outbox, worker = RecordingOutbox(), RecordingWorker()
    stage = OutputStage(outbox, Health(), 0.5, archive_worker=worker, sample_pass_every=2)
    for seq in range(4):
        stage(job(seq, PASS, busy=True, capture=seq == 3))
    assert [(item[0].seq, item[2]) for item in worker.jobs] == [(0, "sample"), (2, "sample"), (3, "capture")]
    assert all(item[1] is not None and item[1].startswith(b"\xff\xd8") for item in worker.jobs)
    assert outbox.overlays == []  # busy passes are still not published


def test_no_overlays_when_the_station_publishes_none_and_archives_nothing() -> None:
    outbox = RecordingOutbox()
    OutputStage(outbox, Health(), 0.5, publish_overlays=False)(job(0, FAIL, busy=False))
    assert outbox.overlays == []


def test_best_effort_workers_run_at_a_lower_priority_than_the_loops() -> None:
    import os
    import threading

    from edge.workers import Worker

    seen: list[int] = []
    worker = Worker(
        "t", lambda job: seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id())), 4, nice=5
    )
    worker.start().offer(1)
    assert worker.close(2.0)
    assert seen == [os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) + 5]
