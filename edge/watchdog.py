"""When to tell systemd what: READY once, WATCHDOG while the loops make progress, STATUS, STOPPING.

``next_signals`` is the pure decision (tests/test_notify.py has its table): READY=1 when the pipeline
runs, the model is loaded and the camera has delivered a frame (or, in trigger mode, is connected
and armed); WATCHDOG=1 after READY, while running, and only while ``Health.progress_ns`` is recent
(a frame, or a grab wait that returned): a stalled loop stops the pings, and systemd restarts the
service ``WatchdogSec`` later. STOPPING=1 once the pipeline drains or stops.

``WatchdogThread`` applies it every ``tick_s``; ``StationNotify`` is what ``Service.run`` calls.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from edge.health import RUNNING, STOPPED, STOPPING, Health, HealthSnapshot
from edge.notify import Notifier, engine_build_pending, extend_start_while

log = logging.getLogger("inp_edge.watchdog")
MAX_TICK_S = 1.0


@dataclass(frozen=True)
class Signals:
    """What one tick sends."""

    ready: bool = False
    watchdog: bool = False
    stopping: bool = False


def ready_now(snapshot: HealthSnapshot, armed_for_trigger: bool) -> bool:
    """The model is warm, the loops run and the camera delivers (or waits armed for a trigger)."""
    delivered = snapshot.counters.get("frames", 0) > 0
    armed = armed_for_trigger and snapshot.camera_connected
    return snapshot.state == RUNNING and snapshot.model_loaded and (delivered or armed)


def next_signals(
    snapshot: HealthSnapshot,
    *,
    sent_ready: bool,
    sent_stopping: bool,
    stall_s: float,
    watchdog_on: bool,
    armed_for_trigger: bool = False,
) -> Signals:
    """The notifications due now (pure)."""
    if sent_stopping:
        return Signals()
    if snapshot.state in (STOPPING, STOPPED):
        return Signals(stopping=True)
    ready = not sent_ready and ready_now(snapshot, armed_for_trigger)
    progressing = snapshot.state == RUNNING and snapshot.progress_age_s <= stall_s
    return Signals(ready=ready, watchdog=watchdog_on and (sent_ready or ready) and progressing)


def status_text(snapshot: HealthSnapshot, stall_s: float) -> str:
    """One line for ``systemctl status``: state, rate, last verdict, camera, counts."""
    counts = snapshot.counters
    camera = "camera connected" if snapshot.camera_connected else "camera not connected"
    parts = f"{counts.get('parts', 0)} parts ({counts.get('fail', 0)} fail, {counts.get('error', 0)} error)"
    text = f"{snapshot.state}: {snapshot.fps:.1f} parts/s, last {snapshot.last_verdict or 'none'}, {camera}, {parts}"
    if snapshot.state == RUNNING and snapshot.progress_age_s > stall_s:
        text += f"; STALLED: no progress for {snapshot.progress_age_s:.0f} s"
    return text


def tick_period_s(watchdog_s: float | None) -> float:
    """Half the watchdog period (sd_watchdog_enabled(3)'s advice), at most ``MAX_TICK_S``."""
    return MAX_TICK_S if watchdog_s is None else min(MAX_TICK_S, watchdog_s / 2)


class WatchdogThread:
    """Sends READY, WATCHDOG, STATUS and STOPPING as ``health`` says, every ``tick_s``."""

    def __init__(
        self,
        health: Health,
        notifier: Notifier,
        *,
        stall_s: float,
        tick_s: float | None = None,
        armed_for_trigger: bool = False,
    ) -> None:
        self.health = health
        self.notifier = notifier
        self.stall_s = stall_s
        self.tick_s = tick_period_s(notifier.watchdog_s) if tick_s is None else tick_s
        self.armed_for_trigger = armed_for_trigger
        self.sent_ready = False
        self.sent_stopping = False
        self._stalled = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="watchdog", daemon=True)

    def start(self) -> WatchdogThread:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop ticking; send STOPPING=1 if no tick has yet."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        if not self.sent_stopping:
            self.sent_stopping = True
            self.notifier.stopping(status_text(self.health.snapshot(), self.stall_s))

    def _loop(self) -> None:
        while True:
            self.tick()
            if self.sent_stopping or self._stop.wait(self.tick_s):
                return

    def tick(self) -> Signals:
        snapshot = self.health.snapshot()
        signals = next_signals(
            snapshot,
            sent_ready=self.sent_ready,
            sent_stopping=self.sent_stopping,
            stall_s=self.stall_s,
            watchdog_on=self.notifier.watchdog_s is not None,
            armed_for_trigger=self.armed_for_trigger,
        )
        text = status_text(snapshot, self.stall_s)
        if signals.stopping:
            self.sent_stopping = True
            self.notifier.stopping(text)
            return signals
        if signals.ready:
            self.sent_ready = True
            self.notifier.ready(text)
            log.info("ready: %s", text)
        else:
            self.notifier.status(text)
        if signals.watchdog:
            self.notifier.watchdog()
        self._log_stall(snapshot)
        return signals

    def _log_stall(self, snapshot: HealthSnapshot) -> None:
        stalled = snapshot.state == RUNNING and snapshot.progress_age_s > self.stall_s
        if stalled and not self._stalled:
            log.error(
                "no loop progress for %.1f s (> %.1f s): watchdog pings stopped, systemd restarts the service",
                snapshot.progress_age_s, self.stall_s,
            )  # fmt: skip
        elif self._stalled and not stalled:
            log.warning("loops make progress again: watchdog pings resumed")
        self._stalled = stalled


class StationNotify:
    """The systemd side of one service run; a no-op without ``$NOTIFY_SOCKET``.

    ``Service.run``::

        notify = StationNotify(self.health, stall_s=..., engine_build_max_s=...)
        with notify.model_loading(config.model.providers, config.cache_dir):
            self.loaded = load_model(config)        # EXTEND_TIMEOUT_USEC while TensorRT builds
        ...                                         # publisher bound, source opened
        notify.start(armed_for_trigger=...)         # READY=1 once frames come, then WATCHDOG / STATUS
        try: self.pipeline.run()
        finally: notify.stop()                      # STOPPING=1
    """

    def __init__(
        self,
        health: Health,
        *,
        stall_s: float,
        engine_build_max_s: float,
        notifier: Notifier | None = None,
    ) -> None:
        self.health = health
        self.stall_s = stall_s
        self.engine_build_max_s = engine_build_max_s
        self.notifier = Notifier() if notifier is None else notifier
        self._thread: WatchdogThread | None = None
        self._stopped = False

    @contextlib.contextmanager
    def model_loading(self, providers: Sequence[str], cache_dir: Path) -> Iterator[None]:
        """STATUS while the model loads; EXTEND_TIMEOUT_USEC while a first TensorRT engine is built."""
        pending = engine_build_pending(_resolved(providers), cache_dir)
        what = "building the TensorRT engine (first start, minutes)" if pending else "loading the model"
        self.notifier.status(f"starting: {what}")
        with extend_start_while(self.notifier, pending=pending, max_s=self.engine_build_max_s):
            yield
        self.notifier.status("starting: model warm; opening the camera")

    def start(self, *, armed_for_trigger: bool = False) -> None:
        self._thread = WatchdogThread(
            self.health, self.notifier, stall_s=self.stall_s, armed_for_trigger=armed_for_trigger
        ).start()

    def stop(self) -> None:
        """STOPPING=1 (once) and the thread ended; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        if self._thread is not None:
            self._thread.stop()
        else:
            self.notifier.stopping()
        self.notifier.close()


def _resolved(providers: Sequence[str]) -> list[str]:
    """The execution providers the session will get (auto expanded); [] when the config is refused."""
    import onnxruntime as ort

    from edge.errors import ConfigError
    from edge.model.session import resolve_providers

    try:
        return resolve_providers(providers, ort.get_available_providers())
    except ConfigError:  # load_model refuses the same providers with the full message
        return []
