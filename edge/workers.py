"""A best-effort worker thread with a bounded queue: work that must never hold up a verdict.

With ``nice`` the thread runs at a lower scheduling priority, so on a small device the overlay
JPEGs and the archive writes take the CPU time the model and the verdicts leave over, instead of
slowing the next part's inspection.

``offer`` never blocks: when the queue is full the job is dropped and counted (overlays and the
archive are best effort; the verdict has already gone out). ``close`` lets the worker finish what is
queued within a time budget, then stops it.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("inp_edge.workers")
BEST_EFFORT_NICE = 10  # overlays and the archive run behind the camera, model and publish threads


def lower_priority(nice: int, name: str) -> None:
    """Raise the calling thread's nice value by ``nice`` (Linux: per thread); best effort."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    try:
        thread_id = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread_id, os.getpriority(os.PRIO_PROCESS, thread_id) + nice)
    except OSError as exc:
        log.debug("%s: cannot lower the thread priority: %s", name, exc)


_STOP = object()


class Worker:
    def __init__(self, name: str, handler: Callable[[Any], None], max_queue: int, *, nice: int = 0) -> None:
        self.name = name
        self.nice = nice  # > 0: this thread yields the CPU to the loops that make verdicts
        self._handler = handler
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self.dropped = 0
        self.failed = 0
        self.done = 0

    def start(self) -> Worker:
        self._thread.start()
        return self

    def offer(self, job: Any) -> bool:
        """Queue ``job``; False (and counted) when the queue is full."""
        try:
            self._queue.put_nowait(job)
            return True
        except queue.Full:
            self.dropped += 1
            return False

    def pending(self) -> int:
        return self._queue.qsize()

    def close(self, timeout_s: float) -> bool:
        """Finish queued jobs within ``timeout_s``; True when the thread ended in time."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self._queue.put(_STOP, timeout=0.05)
                break
            except queue.Full:
                if time.monotonic() > deadline or not self._thread.is_alive():
                    break
        self._thread.join(max(0.0, deadline - time.monotonic()))
        return not self._thread.is_alive()

    def _loop(self) -> None:
        lower_priority(self.nice, self.name)
        while (job := self._queue.get()) is not _STOP:
            try:
                self._handler(job)
                self.done += 1
            except Exception:  # noqa: BLE001 - best-effort work: log with traceback, count, go on
                self.failed += 1
                log.exception("%s: a job failed (the verdict was already published)", self.name)
