"""Station health: counters, fps, and a stall seen by the watchdog whichever loop hangs."""

from __future__ import annotations

import time

from edge.health import Health


def test_verdicts_are_counted_by_kind_and_error_reason() -> None:
    health = Health()
    health.verdict(0, "pass", "")
    health.verdict(1, "error", "overrun: inspect queue full (4 parts waiting)")
    health.verdict(2, "error", "late: 130 ms > deadline 100 ms")
    snapshot = health.snapshot()
    assert snapshot.counters == {"parts": 3, "pass": 1, "error": 2, "error_overrun": 1, "error_late": 1}
    assert snapshot.last_seq == 2 and snapshot.last_verdict == "error (late)"


def test_a_hung_inspection_shows_as_a_stall_even_while_frames_arrive() -> None:
    health = Health()
    health.inspecting(True)
    time.sleep(0.2)
    health.progress()  # the acquire loop still turns
    assert health.snapshot().progress_age_s >= 0.2
    health.inspecting(False)
    assert health.snapshot().progress_age_s < 0.1
