"""``inp-edge listen`` and its session on real sockets: lines, gaps, recovery, overlays, JSON, heartbeats."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edge.control import ControlServer, VerdictRing
from edge.publish.listen import Listener
from edge.publish.listen_session import ListenOptions, ListenSession, format_verdict, listen
from edge.publish.zmq_publisher import Publisher, PublishSettings
from tests.test_publish import LOCAL, heartbeat, overlay, verdict, wait_subscribed

REPO = Path(__file__).resolve().parents[1]
# `inp-edge` with only this command listed, so the test does not depend on the other subcommands' modules
ONLY_LISTEN = "import sys, edge.cli as cli; cli.COMMAND_MODULES = ('edge.publish.listen',); sys.exit(cli.main(sys.argv[1:]))"


def ring_of(seqs) -> VerdictRing:
    ring = VerdictRing(100)
    for seq in seqs:
        ring.add(seq, verdict(seq)[1])  # the header frame, as the outbox hands it over
    return ring


class Output:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.warnings: list[str] = []


def run_session(listener: Listener, options: ListenOptions, timeout_s: float = 3.0) -> tuple[int, Output]:
    output = Output()
    session = ListenSession(options, emit=output.lines.append, warn=output.warnings.append)
    return listen(listener, session, timeout_s=timeout_s), output


def test_listen_command_prints_verdicts_reports_a_gap_and_recovers_it_from_control():
    with (
        Publisher(PublishSettings(LOCAL)) as publisher,
        ControlServer(LOCAL, ring=ring_of(range(10))) as control,
    ):
        command = [sys.executable, "-c", ONLY_LISTEN, "listen", publisher.bound_endpoint]
        command += ["--control", control.bound_endpoint, "--count", "9", "--timeout-s", "20"]
        process = subprocess.Popen(
            command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
        try:
            first = wait_for_heartbeat_line(publisher, lines)
            for seq in [0, 1, 2, 3, 4, 6, 7, 8, 9]:  # seq 5 never published: only the ring has it
                publisher.send_verdict(verdict(seq))
            status = process.wait(timeout=20)
        finally:
            process.kill()
    output = [first] + drain(lines)
    assert status == 0, process.stderr.read()
    assert output[0].startswith("heartbeat line1 state=running camera=connected model=loaded")
    verdict_lines = [line for line in output[1:] if "seq=" in line and not line.startswith("heartbeat")]
    assert [line.split()[0:2] for line in verdict_lines[:5]] == [["line1", f"seq={seq}"] for seq in range(5)]
    gap = output.index("GAP line1: missed seq 5..5 (1 verdicts)\n")
    assert output[gap + 1].startswith("recovered: line1 seq=5 frame=1005 PASS score=0.2")
    assert output[gap + 2].startswith("line1 seq=6 frame=1006 PASS")
    assert len([line for line in verdict_lines if line.startswith("line1 seq=")]) == 9


def wait_for_heartbeat_line(publisher: Publisher, lines: queue.Queue) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        publisher.send_heartbeat(heartbeat())
        try:
            return lines.get(timeout=0.1)
        except queue.Empty:
            continue
    raise AssertionError("the listen command printed nothing within 10 s")


def drain(lines: queue.Queue) -> list[str]:
    time.sleep(0.1)  # let the reader thread hand over what the ended process wrote
    found = []
    while not lines.empty():
        found.append(lines.get())
    return found


def test_lost_verdicts_the_ring_no_longer_holds_are_reported_lost():
    with (
        Publisher(PublishSettings(LOCAL)) as publisher,
        ControlServer(LOCAL, ring=ring_of([3, 4])) as control,
        Listener(publisher.bound_endpoint) as listener,
    ):
        wait_subscribed(publisher, listener)
        for seq in [0, 5]:
            publisher.send_verdict(verdict(seq))
        status, output = run_session(listener, ListenOptions(control=control.bound_endpoint, count=2))
    assert status == 0 and output.warnings == []
    assert output.lines[1] == "GAP line1: missed seq 1..4 (4 verdicts)"
    assert [line.split()[:3] for line in output.lines[2:4]] == [
        ["recovered:", "line1", f"seq={s}"] for s in (3, 4)
    ]
    assert output.lines[4] == "LOST line1: seq 1..2 (2) no longer held by the control socket"
    assert output.lines[5].startswith("line1 seq=5 ")


def test_json_lines_carry_raw_headers_gaps_and_recovered_flags():
    with (
        Publisher(PublishSettings(LOCAL)) as publisher,
        ControlServer(LOCAL, ring=ring_of(range(3))) as control,
        Listener(publisher.bound_endpoint, kinds=("verdict",)) as listener,
    ):
        wait_subscribed_verdict(publisher, listener)
        publisher.send_verdict(verdict(2))
        options = ListenOptions(control=control.bound_endpoint, count=2, json=True)
        status, output = run_session(listener, options)
    records = [json.loads(line) for line in output.lines]
    assert status == 0
    assert [(r["kind"], r.get("seq"), r.get("recovered")) for r in records] == [
        ("verdict", 0, None),
        ("gap", 2, None),
        ("verdict", 1, True),
        ("verdict", 2, None),
    ]
    assert records[1]["missing"] == [1, 1] and records[3]["frame_id"] == 1002


def wait_subscribed_verdict(publisher: Publisher, listener: Listener) -> None:
    """For a listener without heartbeats: seq 0 is the probe, repeated until it arrives."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        publisher.send_verdict(verdict(0))
        if listener.receive(0.05) is not None:
            while listener.receive(0.05) is not None:
                pass
            publisher.send_verdict(verdict(0))  # the one the session will read
            return
    raise AssertionError("the listener got nothing within 5 s")


def test_overlays_are_saved_atomically_by_station_and_seq(tmp_path):
    folder = tmp_path / "overlays"
    with Publisher(PublishSettings(LOCAL)) as publisher, Listener(publisher.bound_endpoint) as listener:
        wait_subscribed(publisher, listener)
        frames = overlay(7)
        publisher.send_overlay(frames)
        publisher.send_verdict(verdict(7))
        status, output = run_session(listener, ListenOptions(save_overlays=folder), timeout_s=0.5)
    saved = folder / "line1-00000007.jpg"
    assert status == 0 and saved.read_bytes() == frames[2]
    assert sorted(path.name for path in folder.iterdir()) == ["line1-00000007.jpg"]  # no temp files left
    assert output.lines[0].startswith("line1 seq=7 ")  # the verdict is urgent: it overtakes its overlay
    assert output.lines[1:] == [f"  overlay line1 seq=7 saved {saved}"]


def test_heartbeats_are_summarised_and_reveal_a_lost_tail():
    with Publisher(PublishSettings(LOCAL)) as publisher, Listener(publisher.bound_endpoint) as listener:
        wait_subscribed(publisher, listener)
        publisher.send_verdict(verdict(0))
        for seq_last in (0, 0, 3, 3):  # verdicts 1..3 never arrive; the heartbeat says they exist
            publisher.send_heartbeat(heartbeat(seq_last))
        status, output = run_session(listener, ListenOptions(), timeout_s=0.5)
    assert status == 0
    assert output.lines[0].startswith("line1 seq=0 ")
    assert output.lines[1].startswith("heartbeat line1 state=running") and "seq_last=0" in output.lines[1]
    assert output.lines[2:] == ["GAP line1: missed seq 1..3 (3 verdicts)"]  # unchanged state: not repeated


def test_a_restart_is_reported_and_a_bad_message_is_skipped_with_a_warning():
    with Publisher(PublishSettings(LOCAL)) as publisher, Listener(publisher.bound_endpoint) as listener:
        wait_subscribed(publisher, listener)
        for seq in (10, 11):
            publisher.send_verdict(verdict(seq))
        publisher.send_verdict([b"line1/verdict", b"{broken"])
        publisher.send_verdict(verdict(0))
        status, output = run_session(listener, ListenOptions(count=3))
    assert status == 0
    assert output.lines[2] == "RESTART line1: seq back to 0 (the service restarted)"
    assert output.lines[3].startswith("line1 seq=0 ")
    assert len(output.warnings) == 1 and "not UTF-8 JSON" in output.warnings[0]


def test_a_listener_keeps_receiving_across_a_publisher_restart():
    with Publisher(PublishSettings(LOCAL)) as first:
        endpoint = first.bound_endpoint
        listener = Listener(endpoint).__enter__()
        wait_subscribed(first, listener)
        first.send_verdict(verdict(7))
        before = listener.receive(2.0)
    with listener, Publisher(PublishSettings(endpoint)) as second:  # same port: the service restarted
        wait_subscribed(second, listener)  # the SUB reconnected on its own
        second.send_verdict(verdict(0))
        after = listener.receive(2.0)
    assert (before.seq, after.seq) == (7, 0)


def test_a_station_filter_drops_other_stations():
    with (
        Publisher(PublishSettings(LOCAL)) as publisher,
        Listener(publisher.bound_endpoint, station="line2") as listener,
    ):
        for _ in range(20):
            publisher.send_verdict(verdict(0))  # line1: never delivered to this listener
        assert listener.receive(0.3) is None


def test_count_not_reached_within_the_timeout_exits_1():
    with Publisher(PublishSettings(LOCAL)) as publisher, Listener(publisher.bound_endpoint) as listener:
        status, output = run_session(listener, ListenOptions(count=5), timeout_s=0.3)
    assert status == 1 and output.warnings == ["0 of 5 verdicts within 0.3 s"]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {},
            "line1 seq=4 frame=9 FAIL score=1.5 raw=0.07 regions=0 latency_ms infer=21.4 capture->publish=28.0",
        ),
        ({"verdict": "error", "reason": "late", "score": None}, "ERROR reason='late' score=- raw=0.07"),
        (
            {"regions": [{"box": [1.4, 2.6, 10, 20], "area_px": 144.0, "peak": 0.5}]},
            "regions=1 [1,3-10,20 144px² peak 0.5]",
        ),
        ({"recovered": True}, "recovered: line1 seq=4 "),
    ],
)
def test_format_verdict(changes, expected):
    header = {
        "station": "line1",
        "seq": 4,
        "frame_id": 9,
        "verdict": "fail",
        "reason": "",
        "score": 1.5,
        "raw_score": 0.07,
        "regions": [],
        "latency_ms": {"infer": 21.4},
        "capture_wall_ns": 1_000_000_000,
        "publish_wall_ns": 1_028_000_000,
    }
    assert expected in format_verdict({**header, **changes})
