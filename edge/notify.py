"""sd_notify: tell systemd that the service is ready, alive, what it is doing, and that it stops.

The protocol (sd_notify(3), declared stable by systemd): one datagram of newline-separated
``KEY=VALUE`` fields, sent to the AF_UNIX socket that ``$NOTIFY_SOCKET`` names (a path, or ``@name``
for the abstract namespace). ``$WATCHDOG_USEC`` (and ``$WATCHDOG_PID``, when set, the process it is
meant for) says how often systemd expects ``WATCHDOG=1``. Without ``$NOTIFY_SOCKET`` everything here
is a no-op, so the same service runs from a shell, a test or a container.

These ~60 lines are our own rather than a package: ``systemd-python`` builds against libsystemd
(a C compiler and libsystemd-dev on every device, no wheels) for one function; ``sdnotify`` is
unmaintained since 2017 and hides every send error. A send that fails here is logged once and
never stops the line. ``EXTEND_TIMEOUT_USEC`` keeps a first start alive while TensorRT builds its
engine (``engine_build_pending``, ``extend_start_while``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from edge.model.session import TENSORRT

log = logging.getLogger("inp_edge.notify")

NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID = "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"


def notify_address(value: str | None) -> str | None:
    """Where to send: a socket path, or ``"\\0name"`` for ``@name``; None when unset or not AF_UNIX."""
    if not value:
        return None
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None  # e.g. "vsock:CID:PORT" (a service manager outside a VM): not for a station


def watchdog_interval_s(environ: Mapping[str, str], pid: int) -> float | None:
    """The watchdog period systemd asks for (``WatchdogSec``), or None when it asks for none from ``pid``."""
    usec_text, pid_text = environ.get(WATCHDOG_USEC, ""), environ.get(WATCHDOG_PID, "")
    if not usec_text.isdigit() or int(usec_text) == 0:
        return None
    if pid_text and pid_text != str(pid):  # meant for another process (e.g. our parent)
        return None
    return int(usec_text) / 1e6


def message(fields: Mapping[str, str]) -> bytes:
    """One datagram: ``KEY=VALUE`` lines; a value is one line (newlines become spaces)."""
    lines = [f"{key}={' '.join(str(value).splitlines())}" for key, value in fields.items()]
    return "\n".join(lines).encode("utf-8")


class Notifier:
    """Sends notifications to systemd; every method is a cheap no-op when ``enabled`` is False."""

    def __init__(self, environ: Mapping[str, str] | None = None, pid: int | None = None) -> None:
        env = os.environ if environ is None else environ
        raw = env.get(NOTIFY_SOCKET, "")
        self.address = notify_address(raw)
        self.watchdog_s = watchdog_interval_s(env, os.getpid() if pid is None else pid)
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._failed = False
        if raw and self.address is None:
            log.warning("NOTIFY_SOCKET=%s is not an AF_UNIX socket path or @name; not notifying systemd", raw)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, fields: Mapping[str, str]) -> bool:
        """Send one notification; False when disabled or the send failed (logged once)."""
        if self.address is None:
            return False
        data = message(fields)
        with self._lock:
            try:
                if self._socket is None:
                    self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._socket.sendto(data, self.address)
            except OSError as exc:
                if not self._failed:
                    log.warning("cannot notify systemd at %s: %s", self.address.replace("\0", "@"), exc)
                self._failed = True
                return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.send({"READY": "1", **({"STATUS": status} if status else {})})

    def status(self, text: str) -> bool:
        return self.send({"STATUS": text})

    def watchdog(self) -> bool:
        return self.send({"WATCHDOG": "1"})

    def stopping(self, status: str = "") -> bool:
        return self.send({"STOPPING": "1", **({"STATUS": status} if status else {})})

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for ``seconds`` more before the current start / stop timeout (EXTEND_TIMEOUT_USEC)."""
        return self.send({"EXTEND_TIMEOUT_USEC": str(int(seconds * 1e6))})

    def close(self) -> None:
        with self._lock:
            if self._socket is not None:
                self._socket.close()
                self._socket = None

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def engine_build_pending(providers: Sequence[str], cache_dir: Path) -> bool:
    """Whether this start builds a TensorRT engine: TensorRT requested and no engine in the cache yet."""
    if TENSORRT not in providers:
        return False
    engines = cache_dir / "tensorrt"
    return not (engines.is_dir() and any(engines.glob("*.engine")))


@contextlib.contextmanager
def extend_start_while(
    notifier: Notifier, *, pending: bool, max_s: float, step_s: float = 30.0
) -> Iterator[None]:
    """While the block runs (a TensorRT build when ``pending``), extend the start timeout every ``step_s``.

    Each message asks for three steps more, so one late wake-up does not end the start; after
    ``max_s`` the extensions stop and systemd's TimeoutStartSec (or the last extension) applies.
    """
    if not (pending and notifier.enabled and max_s > 0):
        yield
        return
    log.info("building the TensorRT engine (first start): extending the start timeout up to %.0f s", max_s)
    done = threading.Event()

    def extend() -> None:
        waited_s = 0.0
        while waited_s < max_s:
            notifier.extend_timeout(min(3 * step_s, max_s - waited_s))
            if done.wait(step_s):
                return
            waited_s += step_s

    thread = threading.Thread(target=extend, name="extend-start", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(2.0)
