"""Contract 4 messages: headers, bytes in and out, parse errors, and seq loss detection (tables)."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from edge.decision import FAIL, PASS, Region, Verdict, error_verdict
from edge.model.preprocess import Box
from edge.publish.messages import (
    DUPLICATE,
    FIRST,
    GAP,
    IN_ORDER,
    RESTART,
    SCHEMA_VERSION,
    MessageError,
    SeqTracker,
    VerdictContext,
    heartbeat_frames,
    heartbeat_header,
    iso_utc,
    overlay_frames,
    parse_message,
    round_float,
    verdict_frames,
    verdict_header,
)

CONTEXT = VerdictContext(station="line1", product="bottle", model_id="sha256:abc", precision="int8")
WALL_NS = 1_740_830_400_123_456_789  # 2025-03-01T12:00:00.123Z


def jpeg() -> bytes:
    ok, encoded = cv2.imencode(".jpg", np.full((8, 8, 3), 128, np.uint8))
    assert ok
    return encoded.tobytes()


def fail_verdict(**changes) -> Verdict:
    values = dict(
        frame_id=41,
        verdict=FAIL,
        t_capture_ns=5_000_000,
        wall_time_ns=WALL_NS,
        score=1.823456789,
        raw_score=0.07312345678,
        threshold=0.05,
        threshold_source="config",
        regions=(Region(Box(312.25, 88.0, 356.5, 131.0), 1420.123456, 0.1123456789),),
        latency_ms={"preprocess": 3.14159265, "infer": 21.4},
        frame_meta={"file": "part_041.png", "labels": ("scratch",)},
    )
    values.update(changes)
    return Verdict(**values)


def test_verdict_header_round_trips_through_parse_with_every_field():
    header = verdict_header(fail_verdict(), seq=7, context=CONTEXT, publish_wall_ns=WALL_NS + 28_000_000)
    message = parse_message(verdict_frames(header))

    assert (message.kind, message.station, message.seq, message.jpeg) == ("verdict", "line1", 7, None)
    got = message.header
    assert got == json.loads(json.dumps(header))
    assert got["schema"] == SCHEMA_VERSION and got["frame_id"] == 41 and got["product"] == "bottle"
    assert (got["verdict"], got["reason"], got["threshold"]) == ("fail", "", 0.05)
    assert got["score"] == 1.82346 and got["raw_score"] == 0.0731235
    assert got["regions"] == [{"box": [312.25, 88.0, 356.5, 131.0], "area_px": 1420.12, "peak": 0.112346}]
    assert got["capture_time"] == "2025-03-01T12:00:00.123Z" and got["capture_wall_ns"] == WALL_NS
    assert got["publish_time"] == "2025-03-01T12:00:00.151Z"
    assert got["latency_ms"] == {"preprocess": 3.14159, "infer": 21.4}
    assert got["model"] == {"id": "sha256:abc", "precision": "int8"}
    assert got["frame_meta"] == {"file": "part_041.png", "labels": ["scratch"]}
    assert got["threshold_source"] == "config"


def test_error_verdict_header_has_nulls_and_the_reason():
    verdict = error_verdict(3, 0, WALL_NS, "overrun", {"file": "x.png"})
    context = VerdictContext("line1", "bottle", "m", "fp32", threshold_source="default from model m")
    header = parse_message(
        verdict_frames(verdict_header(verdict, seq=0, context=context, publish_wall_ns=WALL_NS))
    )
    assert header.header["verdict"] == "error" and header.header["reason"] == "overrun"
    assert (
        header.header["score"] is None
        and header.header["raw_score"] is None
        and header.header["regions"] == []
    )
    assert header.header["threshold_source"] == "default from model m"


def test_nan_and_infinity_become_null_and_the_json_stays_valid():
    verdict = fail_verdict(
        score=math.inf,
        raw_score=math.nan,
        latency_ms={"infer": math.nan},
        frame_meta={
            "gain": np.float32(np.nan),
            "exposure_us": np.int64(900),
            "lut": np.arange(3),
            "raw": b"\x00",
        },
    )
    frames = verdict_frames(verdict_header(verdict, seq=1, context=CONTEXT, publish_wall_ns=WALL_NS))
    text = frames[1].decode()
    assert "NaN" not in text and "Infinity" not in text
    header = json.loads(text)
    assert header["score"] is None and header["raw_score"] is None and header["latency_ms"] == {"infer": None}
    assert header["frame_meta"] == {"gain": None, "exposure_us": 900, "lut": [0, 1, 2], "raw": "<1 bytes>"}


def test_a_large_array_in_frame_meta_is_summarised_not_copied():
    verdict = fail_verdict(frame_meta={"image": np.zeros((480, 640), np.uint8)})
    header = verdict_header(verdict, seq=1, context=CONTEXT, publish_wall_ns=WALL_NS)
    assert header["frame_meta"]["image"] == "<array shape (480, 640) uint8>"


def test_overlay_round_trip_carries_the_verdict_header_and_the_jpeg():
    header = verdict_header(fail_verdict(verdict=PASS), seq=9, context=CONTEXT, publish_wall_ns=WALL_NS)
    image = jpeg()
    message = parse_message(overlay_frames(header, image))
    assert message.kind == "overlay" and message.header["kind"] == "overlay" and message.jpeg == image
    assert {key: value for key, value in message.header.items() if key != "kind"} == {
        key: value for key, value in json.loads(json.dumps(header)).items() if key != "kind"
    }


def test_heartbeat_round_trip():
    header = heartbeat_header(
        station="line1",
        seq_last=-1,
        state="running",
        camera_connected=True,
        model_loaded=False,
        fps=29.97002997,
        counters={"frames": 10, "overrun": 0},
        extra={"product": "bottle"},
        wall_ns=WALL_NS,
    )
    message = parse_message(heartbeat_frames(header))
    assert (message.kind, message.station, message.seq) == ("heartbeat", "line1", -1)
    assert message.header["fps"] == 29.97 and message.header["counters"] == {"frames": 10, "overrun": 0}
    assert message.header["time"] == "2025-03-01T12:00:00.123Z" and message.header["extra"] == {
        "product": "bottle"
    }
    assert (message.header["camera_connected"], message.header["model_loaded"]) == (True, False)


def good_frames() -> list[bytes]:
    return verdict_frames(verdict_header(fail_verdict(), seq=1, context=CONTEXT, publish_wall_ns=WALL_NS))


def with_header(**changes) -> list[bytes]:
    topic, raw = good_frames()
    return [topic, json.dumps({**json.loads(raw), **changes}).encode()]


@pytest.mark.parametrize(
    ("frames", "says"),
    [
        ([b"line1/verdict"], "1 frames"),
        ([b"line1/verdicts", good_frames()[1]], "topic"),
        ([b"line 1/verdict", good_frames()[1]], "topic"),
        ([b"line1/verdict", b"{not json"], "not UTF-8 JSON"),
        ([b"line1/verdict", b"\xff\xfe"], "not UTF-8 JSON"),
        ([b"line1/verdict", b"[1, 2]"], "JSON list"),
        (with_header(schema=2), "schema 2"),
        (with_header(station="line2"), "topic is line1/verdict"),
        (with_header(seq="7"), "'seq'"),
        ([b"line1/overlay", with_header(kind="overlay")[1]], "no JPEG"),
        ([b"line1/overlay", with_header(kind="overlay")[1], b"not a jpeg"], "no JPEG"),
        ([*good_frames(), jpeg()], "unexpected third frame"),
    ],
)
def test_parse_refuses_a_bad_message_and_says_what_is_wrong(frames, says):
    with pytest.raises(MessageError) as caught:
        parse_message(frames)
    assert says in str(caught.value)


@pytest.mark.parametrize("station", ["", "line/1", "line 1", "-x", "ä"])
def test_a_station_name_that_cannot_be_a_topic_is_refused(station):
    context = VerdictContext(station=station, product="p", model_id="m", precision="fp32")
    with pytest.raises(MessageError, match="cannot be a topic"):
        verdict_header(fail_verdict(), seq=0, context=context, publish_wall_ns=WALL_NS)


def test_an_overlay_that_is_not_a_jpeg_is_refused_when_built():
    header = verdict_header(fail_verdict(), seq=0, context=CONTEXT, publish_wall_ns=WALL_NS)
    with pytest.raises(MessageError, match="not a JPEG"):
        overlay_frames(header, b"\x89PNG")


@pytest.mark.parametrize(
    ("value", "rounded"),
    [(None, None), (math.nan, None), (-math.inf, None), (0.0, 0.0), (123456789.0, 123457000.0), (1e-9, 1e-9)],
)
def test_round_float(value, rounded):
    assert round_float(value) == rounded


def test_iso_utc_keeps_milliseconds_and_truncates_below():
    assert iso_utc(0) == "1970-01-01T00:00:00.000Z"
    assert iso_utc(1_999_999_999) == "1970-01-01T00:00:01.999Z"


@pytest.mark.parametrize(
    ("seqs", "expected"),
    [
        ([0, 1, 2], [(FIRST, None), (IN_ORDER, None), (IN_ORDER, None)]),
        ([5, 6], [(FIRST, None), (IN_ORDER, None)]),  # joined late: nothing missing
        ([0, 1, 4, 5], [(FIRST, None), (IN_ORDER, None), (GAP, (2, 3)), (IN_ORDER, None)]),
        ([0, 2, 3, 9], [(FIRST, None), (GAP, (1, 1)), (IN_ORDER, None), (GAP, (4, 8))]),
        ([7, 8, 0, 1], [(FIRST, None), (IN_ORDER, None), (RESTART, None), (IN_ORDER, None)]),
        ([0, 1, 0], [(FIRST, None), (IN_ORDER, None), (RESTART, None)]),  # back to 0 is always a restart
        ([500, 501, 3, 4], [(FIRST, None), (IN_ORDER, None), (RESTART, (0, 2)), (IN_ORDER, None)]),
        ([3, 4, 4, 5], [(FIRST, None), (IN_ORDER, None), (DUPLICATE, None), (IN_ORDER, None)]),
        (
            [3, 4, 5, 3, 6],
            [(FIRST, None), (IN_ORDER, None), (IN_ORDER, None), (DUPLICATE, None), (IN_ORDER, None)],
        ),
    ],
)
def test_seq_tracker_reports_gaps_restarts_and_duplicates(seqs, expected):
    tracker = SeqTracker()
    assert [(event.kind, event.missing) for event in map(tracker.feed, seqs)] == expected


@pytest.mark.parametrize(
    ("verdict_seqs", "seq_last", "expected", "next_expected"),
    [
        ([], -1, None, 0),  # a heartbeat before any verdict: nothing to report
        ([], 12, None, 13),  # joined late
        ([0, 1], 1, None, 2),  # nothing missing
        ([0, 1], 3, (GAP, (2, 3)), 4),  # the tail was lost
        ([0, 1, 2, 3], -1, (RESTART, None), 0),  # restarted, no verdict yet
        ([0, 1, 2, 3, 4, 5], 1, (RESTART, (0, 1)), 2),  # restarted, its first verdicts lost
    ],
)
def test_seq_tracker_reads_heartbeat_seq_last(verdict_seqs, seq_last, expected, next_expected):
    tracker = SeqTracker()
    for seq in verdict_seqs:
        tracker.feed(seq)
    event = tracker.feed_last(seq_last)
    assert (None if event is None else (event.kind, event.missing)) == expected
    assert tracker.expected == next_expected


def test_a_duplicate_beyond_the_recent_window_counts_as_a_restart():
    tracker = SeqTracker(recent=2)
    kinds = [tracker.feed(seq).kind for seq in (10, 11, 12, 10)]
    assert kinds == [FIRST, IN_ORDER, IN_ORDER, RESTART]
