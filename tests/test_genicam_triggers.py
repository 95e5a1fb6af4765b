"""Triggers and parts (pure): the ledger that matches frames to triggers and finds stale frames and misses."""

from __future__ import annotations

import pytest

from edge.camera.triggers import TriggerLedger

MS = 1_000_000


def test_software_triggers_take_announced_parts_in_order_and_frames_take_triggers() -> None:
    ledger = TriggerLedger("software", timeout_ns=100 * MS)
    ledger.announce("A", 0)
    ledger.announce("B", 1)
    assert ledger.trigger(10) == "A" and ledger.trigger(20, part_id="X") == "X" and ledger.trigger(30) == "B"
    matches = [ledger.frame(block, block * MS, t) for block, t in ((1, 15), (2, 25), (3, 35))]
    assert [(m.part_id, m.trigger_t_ns, m.stale) for m in matches] == [
        ("A", 10, ""),
        ("X", 20, ""),
        ("B", 30, ""),
    ]


STALE = [
    # (frames as (block id, camera ts, arrival), the words of the stale reason of the last one)
    ([(5, 50, 15), (5, 60, 25)], "block id 5 does not follow 5"),
    ([(5, 50, 15), (4, 60, 25)], "block id 4 does not follow 5"),
    ([(None, 50, 15), (None, 40, 25)], "camera timestamp is not after"),
    ([(1, 10, 15), (2, 20, 25), (3, 30, 35)], "no software trigger was waiting"),
]


@pytest.mark.parametrize(("frames", "words"), STALE)
def test_a_frame_that_goes_backwards_or_answers_no_trigger_is_stale(frames: list, words: str) -> None:
    ledger = TriggerLedger("software", timeout_ns=100 * MS)
    ledger.trigger(10)
    ledger.trigger(20)
    matches = [ledger.frame(block, ts, t) for block, ts, t in frames]
    assert all(not m.stale for m in matches[:-1]) and words in matches[-1].stale


def test_a_camera_timestamp_that_wraps_is_not_stale_while_the_block_id_moves_on() -> None:
    """TLSimu's timestamp is the nanoseconds within the current second: it goes back once a second."""
    ledger = TriggerLedger("software", timeout_ns=100 * MS)
    ledger.trigger(10, "a")
    ledger.trigger(20, "b")
    first, second = ledger.frame(1, 990 * MS, 15), ledger.frame(2, 4 * MS, 25)
    assert (first.stale, second.stale) == ("", "") and (first.part_id, second.part_id) == ("a", "b")


def test_a_frame_that_arrived_before_its_trigger_was_sent_is_stale() -> None:
    ledger = TriggerLedger("software", timeout_ns=100 * MS)
    ledger.trigger(50)
    assert "no software trigger" in ledger.frame(1, None, 40).stale
    match = ledger.frame(2, None, 60)
    assert not match.stale and match.trigger_t_ns == 50


def test_a_block_id_gap_gives_up_the_oldest_triggers_so_the_frame_matches_its_own() -> None:
    ledger = TriggerLedger("software", timeout_ns=100 * MS)
    ledger.frame(7, None, 0)  # the last frame before: block 7
    for t, part in ((10, "a"), (20, "b"), (30, "c")):
        ledger.trigger(t, part)
    match = ledger.frame(10, None, 35)  # blocks 8 and 9 never arrived
    assert match.lost_frames == 2 and [w.part_id for w in match.missed] == ["a", "b"] and match.part_id == "c"


def test_waiting_triggers_and_parts_expire_as_missed_and_a_new_session_misses_the_rest() -> None:
    ledger = TriggerLedger("line", timeout_ns=100 * MS)
    ledger.announce("p1", 0)
    ledger.announce("p2", 150 * MS)
    assert [w.part_id for w in ledger.expire(120 * MS)] == ["p1"]
    assert ledger.frame(1, None, 160 * MS).part_id == "p2"
    ledger.announce("p3", 170 * MS)
    assert [w.part_id for w in ledger.new_session()] == ["p3"] and ledger.waiting == 0
    assert not ledger.frame(1, None, 200 * MS).stale  # block ids start again after a reopen
