"""The control socket on real 127.0.0.1 sockets: built-in commands, recovery by seq, bad requests, CURVE."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
import zmq
import zmq.auth

from edge.control import (
    ControlError,
    ControlServer,
    RequestError,
    VerdictRing,
    is_local_endpoint,
    request,
)
from edge.control_args import whole_arg
from edge.errors import ConfigError, InpEdgeError, PublishError
from edge.publish.messages import encode_header

LOCAL = "tcp://127.0.0.1:*"


def header(seq: int) -> dict:
    return {"schema": 1, "kind": "verdict", "station": "line1", "seq": seq, "verdict": "pass", "score": 0.1}


def ring_with(seqs, capacity: int = 100) -> VerdictRing:
    ring = VerdictRing(capacity)
    for seq in seqs:
        ring.add(seq, encode_header(header(seq)))
    return ring


def send_raw(endpoint: str, raw: bytes) -> dict:
    import json

    socket = zmq.Context.instance().socket(zmq.REQ)
    socket.linger = 0
    socket.rcvtimeo = 2000
    try:
        socket.connect(endpoint)
        socket.send(raw)
        return json.loads(socket.recv())
    finally:
        socket.close()


def test_ping_help_and_status():
    status = {"state": "running", "counters": {"frames": 12}}
    with ControlServer(LOCAL, status=lambda: status) as server:
        ping = request(server.bound_endpoint, {"cmd": "ping"})
        help_reply = request(server.bound_endpoint, {"cmd": "help"})
        status_reply = request(server.bound_endpoint, {"cmd": "status"})
    assert ping["ok"] is True and ping["pong"] is True and ping["time"].endswith("Z")
    assert set(help_reply["commands"]) == {"ping", "status", "verdicts", "help"}
    assert help_reply["commands"]["verdicts"].startswith("verdict headers by seq")
    assert status_reply == {"ok": True, "state": "running", "counters": {"frames": 12}}


def test_verdicts_by_seq_report_those_evicted_from_the_ring():
    with ControlServer(LOCAL, ring=ring_with(range(10), capacity=5)) as server:
        reply = request(server.bound_endpoint, {"cmd": "verdicts", "from_seq": 2, "to_seq": 7})
    assert reply["ok"] is True
    assert [verdict["seq"] for verdict in reply["verdicts"]] == [5, 6, 7]
    assert reply["verdicts"][0] == header(5)
    assert reply["missing"] == [2, 3, 4]
    assert reply["held"] == {"first_seq": 5, "last_seq": 9} and reply["next_from_seq"] is None


def test_verdicts_come_in_pages_and_stop_at_the_newest_held():
    with ControlServer(LOCAL, ring=ring_with(range(10)), max_verdicts_per_request=3) as server:
        first = request(server.bound_endpoint, {"cmd": "verdicts", "from_seq": 4, "to_seq": 50})
        last = request(server.bound_endpoint, {"cmd": "verdicts", "from_seq": 7})  # to_seq: the newest
        future = request(server.bound_endpoint, {"cmd": "verdicts", "from_seq": 10, "to_seq": 12})
    assert [v["seq"] for v in first["verdicts"]] == [4, 5, 6] and first["next_from_seq"] == 7
    assert [v["seq"] for v in last["verdicts"]] == [7, 8, 9] and last["next_from_seq"] is None
    assert future["verdicts"] == [] and future["missing"] == [] and future["next_from_seq"] is None


def test_bad_requests_get_error_replies_and_the_next_good_request_still_works():
    bad = [
        (b"{not json", "not UTF-8 JSON"),
        (b"\xff\xfe", "not UTF-8 JSON"),
        (b"[1, 2]", "JSON list"),
        (b'{"from_seq": 1}', "unknown command None"),
        (b'{"cmd": "reboot"}', "unknown command 'reboot'"),
        (b'{"cmd": "verdicts"}', "'from_seq' is missing"),
        (b'{"cmd": "verdicts", "from_seq": -1}', "'from_seq' is -1"),
        (b'{"cmd": "verdicts", "from_seq": "3"}', "'from_seq' is '3'"),
        (b'{"cmd": "verdicts", "from_seq": true}', "'from_seq' is True"),
        (b'{"cmd": "verdicts", "from_seq": 5, "to_seq": 2}', "below from_seq"),
    ]
    with ControlServer(LOCAL, ring=ring_with(range(3))) as server:
        for raw, says in bad:
            reply = send_raw(server.bound_endpoint, raw)
            assert reply["ok"] is False and says in reply["error"] and reply["fix"], raw
            assert request(server.bound_endpoint, {"cmd": "ping"})["ok"] is True


def test_extra_handlers_answer_and_their_failures_become_error_replies(caplog):
    def product(request_: dict) -> dict:
        """the active product"""
        return {"product": "bottle", "asked": request_.get("name")}

    def refuse(request_: dict) -> dict:
        raise RequestError("calibrate: product 'x' is not enrolled", fix="enroll it first")

    def broken(request_: dict) -> dict:
        raise ValueError("bad state")

    handlers = {"product": product, "calibrate": refuse, "broken": broken}
    with ControlServer(LOCAL, handlers=handlers) as server, caplog.at_level(logging.ERROR, "edge.control"):
        ok = request(server.bound_endpoint, {"cmd": "product", "name": "b"})
        refused = request(server.bound_endpoint, {"cmd": "calibrate"})
        failed = request(server.bound_endpoint, {"cmd": "broken"})
        after = request(server.bound_endpoint, {"cmd": "help"})
    assert ok == {"ok": True, "product": "bottle", "asked": "b"}
    assert refused == {
        "ok": False,
        "error": "calibrate: product 'x' is not enrolled",
        "fix": "enroll it first",
    }
    assert failed["ok"] is False and "ValueError: bad state" in failed["error"]
    assert any(record.exc_info and record.exc_info[0] is ValueError for record in caplog.records)
    assert after["commands"]["product"] == "the active product"


def test_a_handler_cannot_replace_a_built_in_command():
    with pytest.raises(ConfigError, match="'status' is built in"):
        ControlServer(LOCAL, handlers={"status": lambda request_: {}})


def test_close_returns_within_a_second():
    server = ControlServer(LOCAL).__enter__()
    assert request(server.bound_endpoint, {"cmd": "ping"})["ok"]
    started = time.monotonic()
    server.close()
    assert time.monotonic() - started < 1.0


def test_a_request_nobody_answers_times_out_naming_the_endpoint(tmp_path):
    endpoint = f"ipc://{tmp_path}/nobody"
    with pytest.raises(ControlError) as caught:
        request(endpoint, {"cmd": "ping"}, timeout_s=0.2)
    assert endpoint in str(caught.value) and "0.2 s" in str(caught.value) and caught.value.fix


def test_binding_a_control_port_in_use_names_it():
    with (
        ControlServer(LOCAL) as first,
        pytest.raises(PublishError) as caught,
        ControlServer(first.bound_endpoint),
    ):
        pass
    assert first.bound_endpoint in str(caught.value) and "control" in str(caught.value)


@pytest.mark.parametrize(
    ("endpoint", "local"),
    [
        ("tcp://127.0.0.1:5571", True),
        ("tcp://127.0.0.2:*", True),
        ("tcp://localhost:5571", True),
        ("tcp://[::1]:5571", True),
        ("ipc:///run/inp-edge/line1/control", True),
        ("inproc://control", True),
        ("tcp://*:5571", False),
        ("tcp://0.0.0.0:5571", False),
        ("tcp://10.0.0.5:5571", False),
        ("tcp://eth0:5571", False),
        ("udp://127.0.0.1:5571", False),
    ],
)
def test_is_local_endpoint(endpoint, local):
    assert is_local_endpoint(endpoint) is local


def test_a_remote_endpoint_needs_curve_or_an_explicit_allow(tmp_path):
    with pytest.raises(ConfigError) as caught:
        ControlServer("tcp://*:5571")
    assert "tcp://*:5571" in str(caught.value) and "CURVE" in caught.value.fix
    ControlServer("tcp://*:5571", allow_remote=True)  # constructed, never bound
    ControlServer("tcp://*:5571", curve_secret_key_file=tmp_path / "station.key_secret")


def test_curve_control_answers_a_client_with_the_server_key(tmp_path):
    public, secret = (Path(path) for path in zmq.auth.create_certificates(tmp_path, "station"))
    with ControlServer(LOCAL, curve_secret_key_file=secret) as server:
        reply = request(server.bound_endpoint, {"cmd": "ping"}, curve_server_key_file=public)
        with pytest.raises(ControlError, match="no reply"):
            request(server.bound_endpoint, {"cmd": "ping"}, timeout_s=0.3)  # plain text: no handshake
    assert reply["ok"] is True


def test_verdict_ring_keeps_the_newest_as_sent():
    ring = ring_with([], capacity=3)
    for seq in range(0, 5):
        ring.add(seq, encode_header(header(seq)))
    headers, missing = ring.get(0, 5)
    assert [h["seq"] for h in headers] == [2, 3, 4] and missing == [0, 1, 5]
    assert ring.span() == (2, 4) and len(ring) == 3
    assert VerdictRing(3).span() is None
    assert ring_with([0], capacity=3).get(0, 0)[0][0]["verdict"] == "pass"


@pytest.mark.parametrize(
    ("request_", "default", "value"),
    [({"cmd": "x", "n": 3}, None, 3), ({"cmd": "x"}, 7, 7), ({"cmd": "x", "n": 0}, 7, 0)],
)
def test_whole_arg_reads_whole_numbers(request_, default, value):
    given = {} if default is None else {"default": default}
    assert whole_arg(request_, "n", minimum=0, **given) == value


@pytest.mark.parametrize("value", [-1, 1.5, "3", None, True, [1]])
def test_whole_arg_refuses_other_values(value):
    with pytest.raises(InpEdgeError, match="'n'"):
        whole_arg({"cmd": "x", "n": value}, "n", minimum=0)
