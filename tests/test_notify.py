"""sd_notify over a real NOTIFY_SOCKET datagram socket: the protocol, the watchdog decision, the service."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.health import RUNNING, STARTING, STOPPED, STOPPING, Health, HealthSnapshot
from edge.notify import (
    Notifier,
    engine_build_pending,
    extend_start_while,
    message,
    notify_address,
    watchdog_interval_s,
)
from edge.watchdog import Signals, StationNotify, WatchdogThread, next_signals, status_text, tick_period_s
from tests.conftest import REPO
from tests.service_harness import write_station

CPU, TRT = "CPUExecutionProvider", "TensorrtExecutionProvider"


class NotifyListener:
    """The systemd side: a bound AF_UNIX datagram socket that collects notifications."""

    def __init__(self, sock: socket.socket, env_value: str) -> None:
        self.sock = sock
        self.env_value = env_value
        self.received: list[dict[str, str]] = []

    def receive(self, timeout_s: float) -> dict[str, str] | None:
        self.sock.settimeout(timeout_s)
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            return None
        fields = dict(line.split("=", 1) for line in data.decode("utf-8").split("\n"))
        self.received.append(fields)
        return fields

    def wait_for(self, key: str, timeout_s: float = 10.0, *, value: str | None = None) -> dict[str, str]:
        """Receive until a message with ``key`` (containing ``value``) arrives; fail on the timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            fields = self.receive(max(0.01, deadline - time.monotonic()))
            if fields is not None and key in fields and (value is None or value in fields[key]):
                return fields
        raise AssertionError(f"no {key} {value or ''} within {timeout_s} s; got {self.received}")

    def drain(self, duration_s: float) -> list[dict[str, str]]:
        """Every message received during the next ``duration_s``."""
        got, deadline = [], time.monotonic() + duration_s
        while (left := deadline - time.monotonic()) > 0:
            fields = self.receive(left)
            if fields is not None:
                got.append(fields)
        return got


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[NotifyListener]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    yield NotifyListener(sock, str(path))
    sock.close()


def environ(listener: NotifyListener, watchdog_usec: int | None = None) -> dict[str, str]:
    env = {"NOTIFY_SOCKET": listener.env_value}
    if watchdog_usec is not None:
        env["WATCHDOG_USEC"] = str(watchdog_usec)
    return env


# --- the protocol -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "address"),
    [
        (None, None),
        ("", None),
        ("/run/systemd/notify", "/run/systemd/notify"),
        ("@/org/freedesktop/systemd1/notify/123", "\0/org/freedesktop/systemd1/notify/123"),
        ("@", None),
        ("vsock:2:1234", None),
        ("relative/notify", None),
    ],
)
def test_notify_address_from_the_environment(value: str | None, address: str | None) -> None:
    assert notify_address(value) == address


@pytest.mark.parametrize(
    ("env", "pid", "expected_s"),
    [
        ({}, 7, None),
        ({"WATCHDOG_USEC": "30000000"}, 7, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "7"}, 7, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "8"}, 7, None),  # meant for another process
        ({"WATCHDOG_USEC": "0"}, 7, None),
        ({"WATCHDOG_USEC": "soon"}, 7, None),
        ({"WATCHDOG_USEC": "500000"}, 7, 0.5),
    ],
)
def test_watchdog_interval_follows_watchdog_usec_and_pid(
    env: dict[str, str], pid: int, expected_s: float | None
) -> None:
    assert watchdog_interval_s(env, pid) == expected_s


def test_message_fields_are_single_lines() -> None:
    assert message({"READY": "1", "STATUS": "running\nfine"}) == b"READY=1\nSTATUS=running fine"


def test_notifier_without_notify_socket_does_nothing() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.ready("x") is False and notifier.watchdog() is False


def test_notifier_sends_ready_status_watchdog_stopping_to_a_path_socket(listener: NotifyListener) -> None:
    with Notifier(environ(listener)) as notifier:
        assert notifier.ready("up") and notifier.status("busy") and notifier.watchdog()
        assert notifier.stopping() and notifier.extend_timeout(90)
    got = [listener.receive(2.0) for _ in range(5)]
    assert got == [
        {"READY": "1", "STATUS": "up"},
        {"STATUS": "busy"},
        {"WATCHDOG": "1"},
        {"STOPPING": "1"},
        {"EXTEND_TIMEOUT_USEC": "90000000"},
    ]


def test_notifier_reaches_an_abstract_namespace_socket() -> None:
    name = f"inp-edge-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    try:
        with Notifier({"NOTIFY_SOCKET": "@" + name}) as notifier:
            assert notifier.ready()
        assert NotifyListener(sock, "@" + name).receive(2.0) == {"READY": "1"}
    finally:
        sock.close()


def test_a_vanished_socket_is_logged_once_and_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    with caplog.at_level(logging.WARNING, logger="inp_edge.notify"):
        assert notifier.watchdog() is False
        assert notifier.watchdog() is False
    assert len([r for r in caplog.records if "cannot notify systemd" in r.message]) == 1


# --- TensorRT first start -----------------------------------------------------------------------


def test_engine_build_is_pending_only_for_tensorrt_with_no_engine_cached(tmp_path: Path) -> None:
    assert not engine_build_pending([CPU], tmp_path)
    assert engine_build_pending([TRT, CPU], tmp_path)
    (tmp_path / "tensorrt").mkdir()
    (tmp_path / "tensorrt" / "TensorrtExecutionProvider_cache_sm86.timing").write_bytes(b"t")
    assert engine_build_pending([TRT, CPU], tmp_path), "a timing cache alone is not an engine"
    (tmp_path / "tensorrt" / "TensorrtExecutionProvider_TRTKernel_graph_1_sm86.engine").write_bytes(b"e")
    assert not engine_build_pending([TRT, CPU], tmp_path)


def test_start_timeout_is_extended_while_an_engine_builds(listener: NotifyListener) -> None:
    notifier = Notifier(environ(listener))
    with extend_start_while(notifier, pending=True, max_s=600, step_s=0.05):
        first = listener.wait_for("EXTEND_TIMEOUT_USEC", 5.0)
        second = listener.wait_for("EXTEND_TIMEOUT_USEC", 5.0)
    assert first == second == {"EXTEND_TIMEOUT_USEC": str(int(0.15 * 1e6))}
    assert listener.drain(0.2) == [], "no extension after the build"


def test_no_extension_without_an_engine_build(listener: NotifyListener) -> None:
    with extend_start_while(Notifier(environ(listener)), pending=False, max_s=600, step_s=0.01):
        pass
    assert listener.drain(0.1) == []


def test_model_loading_says_what_the_start_is_doing(listener: NotifyListener, tmp_path: Path) -> None:
    notify = StationNotify(Health(), stall_s=1.0, engine_build_max_s=60, notifier=Notifier(environ(listener)))
    with notify.model_loading(["cpu"], tmp_path):
        pass
    assert [m["STATUS"] for m in listener.drain(0.2)] == [
        "starting: loading the model",
        "starting: model warm; opening the camera",
    ]


# --- the watchdog decision ----------------------------------------------------------------------


def snapshot(
    state: str = RUNNING,
    *,
    frames: int = 1,
    connected: bool = True,
    model: bool = True,
    age_s: float = 0.1,
) -> HealthSnapshot:
    return HealthSnapshot(
        state=state, camera_connected=connected, model_loaded=model, fps=2.5, counters={"frames": frames},
        last_verdict="pass", last_seq=3, progress_age_s=age_s, archive={}, uptime_s=9.0,
    )  # fmt: skip


# (snapshot, sent_ready, sent_stopping, armed_for_trigger, watchdog_on) -> Signals
SIGNALS = [
    ("starting: nothing yet", snapshot(STARTING, frames=0), False, False, False, True, Signals()),
    ("running, no frame yet", snapshot(frames=0), False, False, False, True, Signals()),
    ("first frame: ready + ping", snapshot(), False, False, False, True, Signals(ready=True, watchdog=True)),
    ("model not loaded", snapshot(model=False), False, False, False, True, Signals()),
    ("trigger armed", snapshot(frames=0), False, False, True, True, Signals(ready=True, watchdog=True)),
    ("trigger, camera away", snapshot(frames=0, connected=False), False, False, True, True, Signals()),
    ("ready, progressing", snapshot(age_s=0.5), True, False, False, True, Signals(watchdog=True)),
    ("ready, stalled", snapshot(age_s=30.0), True, False, False, True, Signals()),
    ("stalled at the limit", snapshot(age_s=10.0), True, False, False, True, Signals(watchdog=True)),
    ("no WatchdogSec", snapshot(), True, False, False, False, Signals()),
    ("camera away, loop alive", snapshot(connected=False), True, False, False, True, Signals(watchdog=True)),
    ("draining", snapshot(STOPPING), True, False, False, True, Signals(stopping=True)),
    ("stopped before ready", snapshot(STOPPED, frames=0), False, False, False, True, Signals(stopping=True)),
    ("stopping already sent", snapshot(STOPPING), True, True, False, True, Signals()),
]


@pytest.mark.parametrize(
    ("case", "snap", "sent_ready", "sent_stopping", "armed", "watchdog_on", "expected"),
    SIGNALS,
    ids=[row[0] for row in SIGNALS],
)
def test_next_signals(
    case: str,
    snap: HealthSnapshot,
    sent_ready: bool,
    sent_stopping: bool,
    armed: bool,
    watchdog_on: bool,
    expected: Signals,
) -> None:
    got = next_signals(
        snap,
        sent_ready=sent_ready,
        sent_stopping=sent_stopping,
        stall_s=10.0,
        watchdog_on=watchdog_on,
        armed_for_trigger=armed,
    )
    assert got == expected


def test_status_text_names_rate_last_verdict_camera_and_a_stall() -> None:
    text = status_text(snapshot(age_s=0.2), stall_s=5.0)
    assert text == "running: 2.5 parts/s, last pass, camera connected, 0 parts (0 fail, 0 error)"
    assert "STALLED: no progress for 12 s" in status_text(snapshot(age_s=12.0, connected=False), stall_s=5.0)


@pytest.mark.parametrize(("watchdog_s", "tick_s"), [(None, 1.0), (30.0, 1.0), (1.0, 0.5), (0.2, 0.1)])
def test_tick_is_half_the_watchdog_period_at_most_one_second(watchdog_s: float | None, tick_s: float) -> None:
    assert tick_period_s(watchdog_s) == tick_s


def test_a_stalled_loop_stops_the_watchdog_pings_and_progress_resumes_them(listener: NotifyListener) -> None:
    health = Health()
    health.set_model_loaded(True)
    health.set_camera(True)
    health.count("frames")
    health.set_state(RUNNING)
    feeding = threading.Event()
    feeding.set()
    done = threading.Event()

    def feed() -> None:  # the acquire loop: progress every 10 ms while feeding is set
        while not done.wait(0.01):
            if feeding.is_set():
                health.progress()

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    notifier = Notifier(environ(listener, watchdog_usec=100_000))
    watchdog = WatchdogThread(health, notifier, stall_s=0.3).start()
    try:
        assert watchdog.tick_s == 0.05
        assert listener.wait_for("READY")["READY"] == "1"
        listener.wait_for("WATCHDOG")
        feeding.clear()  # the loop stalls
        listener.wait_for("STATUS", value="STALLED")
        during_stall = listener.drain(0.5)
        assert during_stall, "the thread keeps sending STATUS while stalled"
        assert all("WATCHDOG" not in fields for fields in during_stall)
        feeding.set()  # progress again
        listener.wait_for("WATCHDOG")
        health.set_state(STOPPING)
        listener.wait_for("STOPPING")
    finally:
        done.set()
        watchdog.stop()
        notifier.close()
    keys = [key for fields in listener.received for key in fields]
    assert keys.index("READY") < keys.index("WATCHDOG")
    assert keys.count("READY") == 1 and keys.count("STOPPING") == 1 and keys[-1] in ("STOPPING", "STATUS")


def test_stop_without_a_tick_still_says_stopping(listener: NotifyListener) -> None:
    notify = StationNotify(Health(), stall_s=1.0, engine_build_max_s=0, notifier=Notifier(environ(listener)))
    notify.stop()
    notify.stop()
    assert [m for m in listener.drain(0.2) if "STOPPING" in m] == [{"STOPPING": "1"}]


# --- the real service ---------------------------------------------------------------------------


def test_inp_edge_run_notifies_ready_watchdog_status_then_stopping(
    listener: NotifyListener, tmp_path: Path
) -> None:
    config = write_station(tmp_path / "station", source={"parts": 0, "rate_pps": 20})
    env = {**os.environ, **environ(listener, watchdog_usec=1_000_000)}
    command = [sys.executable, "-m", "edge.cli", "run", "--config", str(config)]
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        listener.wait_for("READY", 30.0)
        listener.wait_for("WATCHDOG", 5.0)
        listener.wait_for("STATUS", 5.0, value="parts/s")
        process.send_signal(signal.SIGTERM)
        listener.wait_for("STOPPING", 10.0)
        _, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr.decode(errors="replace")[-2000:]
    keys = [key for fields in listener.received for key in fields]
    assert "WATCHDOG" not in keys[: keys.index("READY")], "no ping before READY"
    assert keys.index("READY") < keys.index("WATCHDOG") < keys.index("STOPPING")
    assert "WATCHDOG" not in keys[keys.index("STOPPING") :] and "READY" not in keys[keys.index("READY") + 1 :]
