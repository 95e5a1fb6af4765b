"""Pacing a source at a rate: the wait plan (pure) and the schedule a paced generated line keeps."""

from __future__ import annotations

import time

import pytest

from edge.camera.generated import GeneratedLine
from edge.camera.pacing import WaitPlan, plan_wait
from tests.source_support import grab_n


@pytest.mark.parametrize(
    ("now_ns", "due_ns", "timeout_s", "plan"),
    [
        (100, 50, 0.0, WaitPlan(0, True)),  # overdue: now
        (100, 100, 1.0, WaitPlan(0, True)),
        (0, 10_000_000, 0.02, WaitPlan(10_000_000, True)),  # due within the timeout: sleep until due
        (0, 30_000_000, 0.02, WaitPlan(20_000_000, False)),  # not due in time: wait out the timeout
        (0, 30_000_000, 0.0, WaitPlan(0, False)),
        (0, 30_000_000, -1.0, WaitPlan(0, False)),
    ],
)
def test_wait_plan(now_ns: int, due_ns: int, timeout_s: float, plan: WaitPlan) -> None:
    assert plan_wait(now_ns, due_ns, timeout_s) == plan


def test_paced_source_delivers_on_a_fixed_schedule() -> None:
    frames = grab_n(GeneratedLine(size_px=32, rate_pps=50), 10)
    offsets_s = [(f.t_capture_ns - frames[0].t_capture_ns) / 1e9 for f in frames]
    for index, offset_s in enumerate(offsets_s):
        assert offset_s >= index / 50 - 0.002, offsets_s  # never before its due time
        assert offset_s <= index / 50 + 0.1, offsets_s  # generous: a loaded machine may be late
    walls_s = [(f.wall_time_ns - frames[0].wall_time_ns) / 1e9 for f in frames]
    assert walls_s[-1] == pytest.approx(offsets_s[-1], abs=0.01)


def test_grab_returns_none_when_the_next_part_is_not_due_and_keeps_it() -> None:
    with GeneratedLine(size_px=32, rate_pps=5) as source:
        first = source.grab(timeout_s=1.0)
        started_ns = time.monotonic_ns()
        assert source.grab(timeout_s=0.02) is None
        waited_s = (time.monotonic_ns() - started_ns) / 1e9
        second = source.grab(timeout_s=1.0)
    assert 0.02 <= waited_s < 0.19  # waited out the timeout, not the part
    assert second.frame_id == 1 and second.meta["part"] == 1
    assert (second.t_capture_ns - first.t_capture_ns) / 1e9 >= 0.2 - 0.002


def test_late_grab_is_stamped_when_it_happens() -> None:
    with GeneratedLine(size_px=32, rate_pps=100) as source:
        source.grab(timeout_s=1.0)
        time.sleep(0.05)
        asked_ns = time.monotonic_ns()
        late = source.grab(timeout_s=0.0)  # overdue parts come at once
    assert late is not None and late.t_capture_ns >= asked_ns


def test_unpaced_source_never_waits() -> None:
    with GeneratedLine(size_px=32) as source:
        frames = [source.grab(timeout_s=0.0) for _ in range(5)]
    assert all(frame is not None for frame in frames)
