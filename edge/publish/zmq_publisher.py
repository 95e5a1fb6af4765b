"""The station's PUB socket: one owner thread, urgent verdicts, best-effort overlays.

ZeroMQ sockets are not thread-safe, so the socket is created, bound, used and closed by the
publisher's own thread; ``send_verdict`` / ``send_heartbeat`` / ``send_overlay`` only enqueue and
never block. The thread sends verdicts and heartbeats first (one FIFO, so a heartbeat's ``seq_last``
never overtakes the verdicts before it), overlays only when no verdict waits. Each queue is bounded;
a full one drops its oldest message and counts it.

Memory bound (docs/messages.md): at most ``verdict_queue_max`` verdict messages (~1-2 kB each) and
``overlay_queue_max`` overlays (one JPEG each, ~50-300 kB) wait here; past that, ZeroMQ holds at most
``send_hwm_messages`` messages per subscriber (then drops silently: subscribers see the loss in
``seq``). The high-water mark counts messages, not bytes, and a burst a little under it can already
overflow (the reader acknowledges in batches), so it is sized for bursts of verdicts; the memory it
may hold is that count times the size of what a stalled subscriber takes: 1000 x 1.5 kB for
verdicts only, about 1000 / 2 x 100 kB = 50 MB for verdicts with 100 kB overlays (100 MB if it takes
only overlays). Queues here: 10000 x 2 kB + 8 x 300 kB ~ 23 MB at most.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.errors import PublishError
from edge.publish.messages import HEARTBEAT, KINDS, OVERLAY, VERDICT
from edge.publish.sockets import SocketOwner, bind_secured

log = logging.getLogger(__name__)

POLL_S = 0.05  # how often the idle sender thread looks for a close request
HEARTBEAT_IVL_MS = 2000  # ZMTP heartbeats: a dead peer's pipe (and its queued messages) is freed
HEARTBEAT_TIMEOUT_MS = 6000


@dataclass(frozen=True)
class PublishSettings:
    endpoint: str  # e.g. tcp://*:5570 or ipc:///run/inp-edge/line1/publish
    send_hwm_messages: int = 1000  # per subscriber, in ZeroMQ (memory bound: see above)
    overlay_queue_max: int = 8  # best effort: the oldest is dropped when full
    verdict_queue_max: int = 10000  # verdicts + heartbeats waiting for the sender thread
    curve_secret_key_file: Path | None = None  # server .key_secret: encrypt with CURVE
    curve_clients_dir: Path | None = None  # with CURVE: accept only these clients' public .key files


class SendQueues:
    """What waits for the sender thread (not thread-safe: the Publisher holds its lock)."""

    def __init__(self, *, urgent_max: int, overlay_max: int) -> None:
        self._urgent: deque[tuple[str, Sequence[bytes]]] = deque(maxlen=urgent_max)
        self._overlays: deque[tuple[str, Sequence[bytes]]] = deque(maxlen=overlay_max)
        self.dropped = dict.fromkeys(KINDS, 0)

    def put(self, kind: str, frames: Sequence[bytes]) -> None:
        queue = self._overlays if kind == OVERLAY else self._urgent
        if len(queue) == queue.maxlen:
            self.dropped[queue[0][0]] += 1
        queue.append((kind, frames))

    def take(self) -> tuple[str, Sequence[bytes]] | None:
        """The next message to send: verdicts and heartbeats in order, then overlays."""
        if self._urgent:
            return self._urgent.popleft()
        if self._overlays:
            return self._overlays.popleft()
        return None

    def drop_all(self) -> None:
        while (item := self.take()) is not None:
            self.dropped[item[0]] += 1

    def __len__(self) -> int:
        return len(self._urgent) + len(self._overlays)


class Publisher(SocketOwner):
    """The PUB socket of one station (context manager); see the module docstring."""

    def __init__(self, settings: PublishSettings) -> None:
        self.settings = settings
        self.bound_endpoint: str | None = None  # the resolved endpoint (a * port becomes a number)
        self._cond = threading.Condition()
        self._queues = SendQueues(
            urgent_max=settings.verdict_queue_max, overlay_max=settings.overlay_queue_max
        )
        self._sent = dict.fromkeys(KINDS, 0)
        self._state = "new"  # new | running | closing | closed
        self._flush_deadline = 0.0
        self._start_owner(f"publish {settings.endpoint}")

    def send_verdict(self, frames: Sequence[bytes]) -> None:
        self._put(VERDICT, frames)

    def send_overlay(self, frames: Sequence[bytes]) -> None:
        self._put(OVERLAY, frames)

    def send_heartbeat(self, frames: Sequence[bytes]) -> None:
        self._put(HEARTBEAT, frames)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Messages sent inside the block reach the sender thread together, in their send order."""
        with self._cond:
            yield

    def counters(self) -> dict[str, int]:
        """sent_<kind>, dropped_<kind> (queue full, or sent after close) and queued (thread-safe)."""
        with self._cond:
            found = {f"sent_{kind}": count for kind, count in self._sent.items()}
            found.update({f"dropped_{kind}": count for kind, count in self._queues.dropped.items()})
            found["queued"] = len(self._queues)
        return found

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and self._state == "running"

    def close(self, timeout_s: float = 1.0) -> None:
        """Send what is queued within ``timeout_s``, then close the socket (unsent messages dropped)."""
        with self._cond:
            if self._state != "running":
                self._state = "closed"
                return
            self._state = "closing"
            self._flush_deadline = time.monotonic() + timeout_s
            self._cond.notify()
        self._thread.join(timeout_s + 0.5)
        if self._thread.is_alive():
            log.warning("publisher %s: sender thread still busy after %.1f s", self.bound_endpoint, timeout_s)

    def _put(self, kind: str, frames: Sequence[bytes]) -> None:
        with self._cond:
            if self._state == "new":
                raise PublishError(
                    f"publisher {self.settings.endpoint} is not started",
                    fix="use it as `with Publisher(...)`",
                )
            if self._state != "running":
                self._queues.dropped[kind] += 1
                return
            self._queues.put(kind, frames)
            self._cond.notify()

    def _run(self) -> None:
        import zmq

        context = zmq.Context()
        socket = None
        authenticator = None
        try:
            socket, authenticator = self._open(context)
        except PublishError as exc:
            self._finish(context, socket, authenticator, 0)
            self._ready(exc)
            return
        with self._cond:
            self._state = "running"
        self._ready()
        log.info("publishing on %s", self.bound_endpoint)
        try:
            self._send_loop(socket)
        except Exception:  # a bug here must not pass unseen: the service health reads `running`
            log.exception("publisher %s: sender thread failed", self.bound_endpoint)
        finally:
            with self._cond:
                self._state = "closed"
                linger_ms = max(0, int((self._flush_deadline - time.monotonic()) * 1000))
            self._finish(context, socket, authenticator, linger_ms)

    def _open(self, context: Any) -> tuple[Any, Any]:
        import zmq

        settings = self.settings
        socket = context.socket(zmq.PUB)
        socket.linger = 0
        socket.sndhwm = settings.send_hwm_messages
        socket.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_IVL_MS)
        socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)
        try:
            self.bound_endpoint, authenticator = bind_secured(
                context,
                socket,
                settings.endpoint,
                "publish",
                settings.curve_secret_key_file,
                settings.curve_clients_dir,
            )
        except BaseException:
            socket.close(linger=0)
            raise
        return socket, authenticator

    def _send_loop(self, socket: Any) -> None:
        import zmq

        while True:
            with self._cond:
                item = self._queues.take()
                if item is None:
                    if self._state != "running":
                        return
                    self._cond.wait(POLL_S)
                    continue
                if self._state == "closing" and time.monotonic() > self._flush_deadline:
                    self._queues.dropped[item[0]] += 1
                    self._queues.drop_all()
                    return
            kind, frames = item
            try:
                socket.send_multipart(frames, flags=zmq.NOBLOCK)
            except zmq.ZMQError as exc:
                log.warning("publisher %s: %s message not sent: %s", self.bound_endpoint, kind, exc)
                with self._cond:
                    self._queues.dropped[kind] += 1
                continue
            with self._cond:
                self._sent[kind] += 1

    @staticmethod
    def _finish(context: Any, socket: Any, authenticator: Any, linger_ms: int) -> None:
        if socket is not None:
            socket.close(linger=linger_ms)
        if authenticator is not None:
            authenticator.stop()
        context.term()
