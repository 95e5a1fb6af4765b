"""Counters and state of a running station: what the heartbeat, the status request and STATUS= say.

One ``Health`` per service, updated by every loop (thread-safe, cheap: a lock and a few integers)
and read by the heartbeat and the control socket. ``progress_ns`` moves whenever a loop makes
progress (a frame, or an idle wait that returned), which is what the watchdog follows.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

from edge.decision import reason_kind

STARTING, RUNNING, STOPPING, STOPPED = "starting", "running", "stopping", "stopped"
FPS_WINDOW_S = 5.0


@dataclass(frozen=True)
class HealthSnapshot:
    state: str
    camera_connected: bool
    model_loaded: bool
    fps: float  # verdicts per second over the last FPS_WINDOW_S
    counters: dict[str, int]
    last_verdict: str
    last_seq: int
    progress_age_s: (
        float  # the longest stall: since the acquire loop's last progress, or the current inspection
    )
    archive: dict[str, Any]
    uptime_s: float


class Health:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: Counter[str] = Counter()
        self._verdict_times_ns: deque[int] = deque(maxlen=10_000)
        self._state = STARTING
        self._camera_connected = False
        self._model_loaded = False
        self._last_verdict = ""
        self._last_seq = -1
        self._archive: dict[str, Any] = {}
        self._started_ns = time.monotonic_ns()
        self.progress_ns = self._started_ns
        self._inspect_since_ns = 0  # 0: the inspect loop is not inside an inspection

    def set_state(self, state: str) -> None:
        with self._lock:
            self._state = state

    def set_camera(self, connected: bool) -> None:
        with self._lock:
            self._camera_connected = connected

    def set_model_loaded(self, loaded: bool) -> None:
        with self._lock:
            self._model_loaded = loaded

    def set_archive(self, status: dict[str, Any]) -> None:
        with self._lock:
            self._archive = dict(status)

    def count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counters[name] += amount

    def progress(self) -> None:
        self.progress_ns = time.monotonic_ns()

    def inspecting(self, busy: bool) -> None:
        """The inspect loop entered (True) or left (False) one inspection: a hung model call shows."""
        self._inspect_since_ns = time.monotonic_ns() if busy else 0

    def verdict(self, seq: int, verdict: str, reason: str) -> None:
        """Count one published verdict (by kind, and errors by reason)."""
        now = time.monotonic_ns()
        with self._lock:
            self._counters["parts"] += 1
            self._counters[verdict] += 1
            if reason:
                self._counters[f"error_{reason_kind(reason)}"] += 1
            self._verdict_times_ns.append(now)
            self._last_verdict = verdict if not reason else f"{verdict} ({reason_kind(reason)})"
            self._last_seq = seq
        self.progress_ns = now

    def snapshot(self) -> HealthSnapshot:
        now = time.monotonic_ns()
        with self._lock:
            window_start = now - int(FPS_WINDOW_S * 1e9)
            recent = sum(1 for t in self._verdict_times_ns if t >= window_start)
            span_s = min(FPS_WINDOW_S, (now - self._started_ns) / 1e9)
            return HealthSnapshot(
                state=self._state,
                camera_connected=self._camera_connected,
                model_loaded=self._model_loaded,
                fps=recent / span_s if span_s > 0 else 0.0,
                counters=dict(self._counters),
                last_verdict=self._last_verdict,
                last_seq=self._last_seq,
                progress_age_s=max(now - self.progress_ns, now - (self._inspect_since_ns or now)) / 1e9,
                archive=dict(self._archive),
                uptime_s=(now - self._started_ns) / 1e9,
            )
