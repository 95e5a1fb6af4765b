"""The PUB socket on real 127.0.0.1 sockets: delivery, priorities, drops, reconnects, bind errors, CURVE."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import zmq.auth

from edge.decision import PASS, Verdict
from edge.errors import PublishError
from edge.publish.listen import Listener
from edge.publish.messages import (
    HEARTBEAT,
    OVERLAY,
    VERDICT,
    VerdictContext,
    heartbeat_frames,
    heartbeat_header,
    overlay_frames,
    verdict_frames,
    verdict_header,
)
from edge.publish.zmq_publisher import Publisher, PublishSettings, SendQueues

LOCAL = "tcp://127.0.0.1:*"
CONTEXT = VerdictContext(station="line1", product="bottle", model_id="m1", precision="fp32")
SUBSCRIBE_WAIT_S = 5.0


def verdict(seq: int) -> list[bytes]:
    value = Verdict(frame_id=1000 + seq, verdict=PASS, t_capture_ns=0, wall_time_ns=time.time_ns(), score=0.2)
    return verdict_frames(verdict_header(value, seq=seq, context=CONTEXT, publish_wall_ns=time.time_ns()))


def overlay(seq: int, size_px: int = 16) -> list[bytes]:
    header = verdict_header(
        Verdict(seq, PASS, 0, time.time_ns()), seq=seq, context=CONTEXT, publish_wall_ns=time.time_ns()
    )
    noise = np.random.default_rng(seq).integers(0, 255, (size_px, size_px, 3), np.uint8)
    return overlay_frames(header, cv2.imencode(".jpg", noise)[1].tobytes())


def heartbeat(seq_last: int = -1) -> list[bytes]:
    header = heartbeat_header(
        station="line1",
        seq_last=seq_last,
        state="running",
        camera_connected=True,
        model_loaded=True,
        fps=1.0,
        counters={},
        extra=None,
        wall_ns=time.time_ns(),
    )
    return heartbeat_frames(header)


def wait_subscribed(publisher: Publisher, listener: Listener) -> None:
    """Send heartbeats until one arrives (a SUB's subscription reaches the PUB after it connects)."""
    deadline = time.monotonic() + SUBSCRIBE_WAIT_S
    while time.monotonic() < deadline:
        publisher.send_heartbeat(heartbeat())
        message = listener.receive(0.05)
        if message is not None and message.kind == HEARTBEAT:
            while listener.receive(0.05) is not None:  # drain the other heartbeats
                pass
            return
    raise AssertionError(f"no heartbeat reached the listener within {SUBSCRIBE_WAIT_S} s")


def receive_all(listener: Listener, count: int, timeout_s: float = 5.0) -> list:
    received = []
    deadline = time.monotonic() + timeout_s
    while len(received) < count and time.monotonic() < deadline:
        message = listener.receive(0.1)
        if message is not None and message.kind != HEARTBEAT:
            received.append(message)
    return received


def test_200_verdicts_arrive_in_order_without_a_gap():
    with Publisher(PublishSettings(LOCAL)) as publisher, Listener(publisher.bound_endpoint) as listener:
        wait_subscribed(publisher, listener)
        for seq in range(200):
            publisher.send_verdict(verdict(seq))
        received = receive_all(listener, 200)
    assert [message.seq for message in received] == list(range(200))
    assert [message.header["frame_id"] for message in received[:2]] == [1000, 1001]


def test_verdicts_go_before_queued_overlays():
    with Publisher(PublishSettings(LOCAL)) as publisher, Listener(publisher.bound_endpoint) as listener:
        wait_subscribed(publisher, listener)
        with publisher.batch():  # the sender thread sees all of these at once
            for seq in range(4):
                publisher.send_overlay(overlay(seq))
            publisher.send_verdict(verdict(4))
        received = receive_all(listener, 5)
    assert [(message.kind, message.seq) for message in received] == [
        (VERDICT, 4),
        (OVERLAY, 0),
        (OVERLAY, 1),
        (OVERLAY, 2),
        (OVERLAY, 3),
    ]


def test_a_full_overlay_queue_drops_the_oldest_counted_and_the_verdict_still_goes():
    settings = PublishSettings(LOCAL, overlay_queue_max=8)
    with Publisher(settings) as publisher, Listener(publisher.bound_endpoint) as listener:
        wait_subscribed(publisher, listener)
        with publisher.batch():
            for seq in range(20):
                publisher.send_overlay(overlay(seq))
            publisher.send_verdict(verdict(20))  # returns at once: the caller holds the only lock
            assert publisher.counters()["dropped_overlay"] == 12
        received = receive_all(listener, 9)
        counters = publisher.counters()
    assert [message.seq for message in received] == [20, *range(12, 20)]
    assert received[0].kind == VERDICT
    assert (counters["sent_verdict"], counters["sent_overlay"], counters["dropped_overlay"]) == (1, 8, 12)
    assert counters["dropped_verdict"] == 0 and counters["queued"] == 0


def test_send_queues_take_verdicts_and_heartbeats_in_order_before_overlays():
    queues = SendQueues(urgent_max=3, overlay_max=2)
    for kind, name in [(OVERLAY, "o1"), (VERDICT, "v1"), (HEARTBEAT, "h1"), (OVERLAY, "o2"), (OVERLAY, "o3")]:
        queues.put(kind, [name.encode()])
    for name in ["v2", "v3"]:
        queues.put(VERDICT, [name.encode()])  # the urgent queue holds 3: v1 goes
    taken = []
    while (item := queues.take()) is not None:
        taken.append(item[1][0].decode())
    assert taken == ["h1", "v2", "v3", "o2", "o3"]
    assert queues.dropped == {VERDICT: 1, OVERLAY: 1, HEARTBEAT: 0}


def test_a_subscriber_that_vanishes_and_comes_back_keeps_receiving():
    with Publisher(PublishSettings(LOCAL)) as publisher:
        with Listener(publisher.bound_endpoint) as first:
            wait_subscribed(publisher, first)
            publisher.send_verdict(verdict(0))
            assert [message.seq for message in receive_all(first, 1)] == [0]
        for seq in range(1, 50):  # nobody listens: PUB drops these, the publisher does not care
            publisher.send_verdict(verdict(seq))
        with Listener(publisher.bound_endpoint, kinds=(VERDICT, HEARTBEAT)) as second:
            wait_subscribed(publisher, second)
            publisher.send_verdict(verdict(50))
            received = receive_all(second, 1)
        assert publisher.running
    assert [message.seq for message in received] == [50]


def test_close_returns_within_a_second_while_a_subscriber_stalls():
    settings = PublishSettings(LOCAL, send_hwm_messages=10)
    publisher = Publisher(settings).__enter__()
    with Listener(publisher.bound_endpoint) as stalled:  # connected, never reads after this
        wait_subscribed(publisher, stalled)
        for seq in range(200):
            publisher.send_overlay(overlay(seq, size_px=256))
            publisher.send_verdict(verdict(seq))
        started = time.monotonic()
        publisher.close(timeout_s=0.5)
        assert time.monotonic() - started < 1.0
    assert not publisher.running


def test_close_sends_what_is_queued_before_returning():
    publisher = Publisher(PublishSettings(LOCAL)).__enter__()
    with Listener(publisher.bound_endpoint) as listener:
        wait_subscribed(publisher, listener)
        for seq in range(50):
            publisher.send_verdict(verdict(seq))
        publisher.close(timeout_s=1.0)  # at once: most are still queued
        received = receive_all(listener, 50)
    assert [message.seq for message in received] == list(range(50))
    assert publisher.counters()["sent_verdict"] == 50


def test_sending_before_start_is_an_error_and_after_close_is_counted():
    publisher = Publisher(PublishSettings(LOCAL))
    with pytest.raises(PublishError, match="not started"):
        publisher.send_verdict(verdict(0))
    with publisher:
        pass
    publisher.send_verdict(verdict(1))
    assert publisher.counters()["dropped_verdict"] == 1


def test_binding_a_port_in_use_names_the_endpoint_and_the_fix():
    with (
        Publisher(PublishSettings(LOCAL)) as first,
        pytest.raises(PublishError) as caught,
        Publisher(PublishSettings(first.bound_endpoint)),
    ):
        pass
    assert first.bound_endpoint in str(caught.value) and "another port" in caught.value.fix


@pytest.mark.parametrize(
    ("endpoint", "fix"),
    [
        ("tcp://127.0.0.1:notaport", "tcp://ADDRESS:PORT"),
        ("bogus://somewhere", "tcp://ADDRESS:PORT"),
        ("ipc:///proc/no-such-folder/publish", "folder"),
    ],
)
def test_a_bad_endpoint_fails_at_start_naming_it(endpoint, fix):
    with pytest.raises(PublishError) as caught, Publisher(PublishSettings(endpoint)):
        pass
    assert endpoint in str(caught.value) and fix in caught.value.fix


@pytest.fixture()
def keys(tmp_path):
    server_public, server_secret = zmq.auth.create_certificates(tmp_path, "station")
    client_public, client_secret = zmq.auth.create_certificates(tmp_path, "gateway")
    return {
        "server": (Path(server_public), Path(server_secret)),
        "client": (Path(client_public), Path(client_secret)),
    }


def test_curve_encrypted_delivery_reaches_a_client_with_the_server_key(keys):
    settings = PublishSettings(LOCAL, curve_secret_key_file=keys["server"][1])
    with Publisher(settings) as publisher:
        with Listener(publisher.bound_endpoint, curve_server_key_file=keys["server"][0]) as listener:
            wait_subscribed(publisher, listener)
            publisher.send_verdict(verdict(0))
            assert [message.seq for message in receive_all(listener, 1)] == [0]
        with Listener(publisher.bound_endpoint) as plain:  # no CURVE: the handshake fails, nothing arrives
            publisher.send_verdict(verdict(1))
            assert plain.receive(0.3) is None


def test_curve_clients_folder_admits_only_known_clients(keys, tmp_path):
    allowed = tmp_path / "clients"
    allowed.mkdir()
    (allowed / "gateway.key").write_bytes(keys["client"][0].read_bytes())
    settings = PublishSettings(LOCAL, curve_secret_key_file=keys["server"][1], curve_clients_dir=allowed)
    server_key = keys["server"][0]
    with Publisher(settings) as publisher:
        with Listener(
            publisher.bound_endpoint,
            curve_server_key_file=server_key,
            curve_client_key_file=keys["client"][1],
        ) as known:
            wait_subscribed(publisher, known)
        with Listener(publisher.bound_endpoint, curve_server_key_file=server_key) as stranger:
            publisher.send_heartbeat(heartbeat())
            assert stranger.receive(0.3) is None


@pytest.mark.parametrize("which", ["missing", "public-only"])
def test_an_unusable_curve_key_file_is_a_clear_error_at_start(keys, tmp_path, which):
    path = tmp_path / "nope.key_secret" if which == "missing" else keys["server"][0]
    with pytest.raises(PublishError) as caught, Publisher(PublishSettings(LOCAL, curve_secret_key_file=path)):
        pass
    assert str(path) in str(caught.value) and caught.value.fix
