"""Where verdicts go: the gap-free ``seq``, the header, the ring for gap recovery, the PUB socket.

``publish_verdict`` is called from the inspect thread and (for overruns) the acquire thread; a lock
makes seq assignment, the ring and the hand-over to the publisher one step, so seq order is publish
order and the ring holds exactly what was sent.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from edge.control import VerdictRing
from edge.decision import Verdict
from edge.publish.messages import VerdictContext, overlay_frames, verdict_frames, verdict_header

if TYPE_CHECKING:
    from edge.metrics import Metrics


class PublisherLike(Protocol):
    def send_verdict(self, frames: list[bytes]) -> None: ...

    def send_overlay(self, frames: list[bytes]) -> None: ...


class Outbox:
    def __init__(
        self,
        publisher: PublisherLike,
        ring: VerdictRing,
        context: VerdictContext,
        metrics: Metrics | None = None,
    ) -> None:
        self.publisher = publisher
        self.metrics = metrics
        self.ring = ring
        self.context = context
        self._lock = threading.Lock()
        self._next_seq = 0

    @property
    def last_seq(self) -> int:
        return self._next_seq - 1

    def publish_verdict(self, verdict: Verdict) -> tuple[int, dict[str, Any]]:
        with self._lock:
            now_ns = time.monotonic_ns()
            stages = {**verdict.latency_ms, "capture_to_publish_ms": (now_ns - verdict.t_capture_ns) / 1e6}
            seq = self._next_seq
            final = replace(verdict, latency_ms=stages)
            header = verdict_header(
                final,
                seq=seq,
                context=self.context,
                publish_wall_ns=time.time_ns(),
            )
            frames = verdict_frames(header)
            self.ring.add(seq, frames[1])  # the JSON is encoded once, for the socket and the ring
            self.publisher.send_verdict(frames)
            self._next_seq += 1
        if self.metrics is not None:
            self.metrics.observe_verdict(final, self.context.product)
        return seq, header

    def publish_overlay(self, header: dict[str, Any], jpeg: bytes) -> None:
        self.publisher.send_overlay(overlay_frames(header, jpeg))
