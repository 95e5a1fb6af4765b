"""The calibration rules as tables: thresholds on hand-checkable scores, rates, errors, the collector."""

from __future__ import annotations

import json
import math
import threading

import numpy as np
import pytest

from edge.errors import InpEdgeError
from edge.products.calibration import (
    RULES,
    CalibrationError,
    ScoreCollector,
    f1_rule,
    format_preview,
    normal_quantile,
    preview,
    quantile_rule,
    tail_rule,
)

Z90, Z99, Z999 = 1.2815515655, 2.3263478740, 3.0902323062
ONE_TO_FIVE = [1.0, 2.0, 3.0, 4.0, 5.0]


@pytest.mark.parametrize(
    ("good", "quantile", "margin", "threshold", "false_reject"),
    [
        (ONE_TO_FIVE, 1.0, 0.1, 5.0 + 0.1 * (5.0 - 3.0), 0.0),
        (ONE_TO_FIVE, 0.75, 0.1, 4.0 + 0.1 * (4.0 - 3.0), 0.2),  # linear interpolation: index 3 → 4
        (ONE_TO_FIVE, 0.9, 0.0, 4.6, 0.2),  # index 3.6 → 4.6
        (ONE_TO_FIVE, 0.5, 0.5, 3.0, 0.4),  # the median: no spread, no margin
        ([2.0], 0.99, 0.1, 2.0, 0.0),
        ([7.0, 7.0, 7.0], 0.99, 0.1, 7.0, 0.0),
    ],
)
def test_quantile_rule_adds_a_margin_relative_to_the_spread_above_the_median(
    good: list[float], quantile: float, margin: float, threshold: float, false_reject: float
) -> None:
    result = quantile_rule(good, quantile=quantile, margin=margin)
    assert result.rule == "quantile"
    assert result.threshold == pytest.approx(threshold)
    assert result.false_reject_rate == pytest.approx(false_reject)
    assert result.escape_rate is None and result.expected_false_reject is None
    assert result.params["median"] == pytest.approx(float(np.median(good)))


def test_quantile_rule_is_scale_free_and_says_when_there_are_too_few_scores() -> None:
    small = quantile_rule(ONE_TO_FIVE, quantile=0.99, margin=0.2)
    scaled = quantile_rule([10.0 * score for score in ONE_TO_FIVE], quantile=0.99, margin=0.2)
    assert scaled.threshold == pytest.approx(10.0 * small.threshold)
    assert "only 5 good scores" in small.note
    assert "only" not in quantile_rule(np.linspace(0.0, 1.0, 200), quantile=0.99).note


@pytest.mark.parametrize(
    ("good", "bad", "threshold", "f1", "false_reject", "escape"),
    [
        ([1.0, 2.0, 3.0], [5.0, 6.0], 4.0, 1.0, 0.0, 0.0),  # separable: the middle of the gap
        (list(np.arange(1.0, 11.0)), [9.5, 11.0, 12.0], 9.25, 6.0 / 7.0, 0.1, 0.0),  # overlapping
        ([2.0, 3.0], [1.0, 4.0], 3.5, 2.0 / 3.0, 0.0, 0.5),  # F1 tie with "all fail": fewer false rejects
        ([1.0, 1.0], [1.0], 0.5, 0.5, 1.0, 0.0),  # all equal: the below-min end (0.5 below)
        ([1.0, 2.0], [0.0], -1.0, 0.5, 1.0, 0.0),  # bad below every good: the end cut, half the span away
    ],
)
def test_f1_rule_picks_the_cut_with_the_best_f1_for_the_bad_class(
    good: list[float], bad: list[float], threshold: float, f1: float, false_reject: float, escape: float
) -> None:
    result = f1_rule(good, bad)
    assert result.threshold == pytest.approx(threshold)
    assert result.params["f1"] == pytest.approx(f1)
    assert result.false_reject_rate == pytest.approx(false_reject)
    assert result.escape_rate == pytest.approx(escape)


def test_f1_rule_never_puts_the_threshold_on_a_score() -> None:
    rng = np.random.default_rng(3)
    good, bad = rng.normal(0.0, 1.0, 300), rng.normal(2.0, 1.0, 40)
    result = f1_rule(good, bad)
    assert result.threshold not in set(np.concatenate([good, bad]).tolist())
    assert 0.0 < result.false_reject_rate < 0.5 and 0.0 < result.escape_rate < 0.5
    assert result.params["precision"] > 0.0 and result.params["recall"] > 0.5


@pytest.mark.parametrize(("p", "z"), [(0.9, Z90), (0.99, Z99), (0.999, Z999), (0.5, 0.0), (0.01, -Z99)])
def test_normal_quantile_matches_known_values(p: float, z: float) -> None:
    assert normal_quantile(p) == pytest.approx(z, abs=1e-9)


def test_normal_quantile_is_accurate_in_the_far_tails_and_refuses_non_probabilities() -> None:
    for p in (1e-12, 1e-6, 0.02, 0.03, 0.97, 0.98, 1.0 - 1e-9):
        assert 0.5 * math.erfc(-normal_quantile(p) / math.sqrt(2.0)) == pytest.approx(p, rel=1e-9)
    for p in (0.0, 1.0, math.nan):
        with pytest.raises(CalibrationError):
            normal_quantile(p)


SPREAD_1_TO_5 = 1.4826 * 1.0  # |x − 3| = 2, 1, 0, 1, 2 → MAD 1


@pytest.mark.parametrize(
    ("good", "target", "threshold", "false_reject"),
    [
        (ONE_TO_FIVE, 0.5, 3.0, 0.4),  # z = 0: the median
        (ONE_TO_FIVE, 0.1, 3.0 + Z90 * SPREAD_1_TO_5, 0.2),
        (ONE_TO_FIVE, 0.001, 3.0 + Z999 * SPREAD_1_TO_5, 0.0),
        ([1.0, 1.0, 1.0, 2.0], 0.1, 1.0 + Z90 * 0.5, 0.25),  # MAD 0 → sample standard deviation 0.5
        ([2.0, 2.0, 2.0], 0.1, 2.0 + Z90 * 0.01 * 2.0, 0.0),  # all equal → 1 % of the centre
        ([0.0, 0.0, 0.0], 0.01, Z99 * 0.01, 0.0),  # all zero → 1 % of 1
        ([5.0], 0.001, 5.0 + Z999 * 0.05, 0.0),
    ],
)
def test_tail_rule_places_the_threshold_on_a_robust_normal_fit(
    good: list[float], target: float, threshold: float, false_reject: float
) -> None:
    result = tail_rule(good, target_false_reject=target)
    assert result.threshold == pytest.approx(threshold, abs=1e-8)
    assert result.false_reject_rate == pytest.approx(false_reject)
    assert result.expected_false_reject == target
    assert result.params["centre"] == pytest.approx(float(np.median(good)))


@pytest.mark.parametrize(("n", "rough"), [(1, True), (2, True), (3, False), (50, False)])
def test_tail_rule_says_its_estimate_is_rough_below_three_good_scores(n: int, rough: bool) -> None:
    note = tail_rule(list(np.linspace(1.0, 2.0, n))).note
    assert (f"rough estimate from n={n}" in note) is rough


def test_tail_rule_is_not_the_largest_good_score() -> None:
    rng = np.random.default_rng(7)
    tight = rng.normal(10.0, 1.0, 50)
    above = tail_rule(tight, target_false_reject=0.001)
    assert above.threshold > tight.max()  # 3.09 sigma: beyond what 50 good parts reach
    assert above.threshold != pytest.approx(tight.max(), rel=1e-3)
    loose = tail_rule(tight, target_false_reject=0.2)
    assert loose.threshold < tight.max() and 0.1 < loose.false_reject_rate < 0.3
    with_outlier = np.append(tight, 100.0)
    robust = tail_rule(with_outlier, target_false_reject=0.001)
    assert robust.threshold < 20.0 and robust.false_reject_rate == pytest.approx(1 / 51)  # the outlier fails


def test_tail_rule_false_reject_matches_the_target_on_normal_scores() -> None:
    good = np.random.default_rng(11).normal(0.3, 0.05, 20_000)
    result = tail_rule(good, target_false_reject=0.01)
    assert 0.008 < result.false_reject_rate < 0.012
    assert result.params["spread"] == pytest.approx(0.05, rel=0.03)


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: quantile_rule([]), "good scores: 0 given"),
        (lambda: tail_rule(np.array([])), "good scores: 0 given"),
        (lambda: quantile_rule([1.0, math.nan]), "non-finite"),
        (lambda: tail_rule([1.0, math.inf]), "non-finite"),
        (lambda: f1_rule([1.0], []), "bad scores: 0 given"),
        (lambda: f1_rule([1.0], [math.nan]), "bad scores include 1 non-finite"),
        (lambda: f1_rule([], [1.0]), "good scores: 0 given"),
        (lambda: quantile_rule(["a", "b"]), "not numbers"),
        (lambda: quantile_rule([1.0], quantile=0.3), "quantile = 0.3"),
        (lambda: quantile_rule([1.0], margin=-1.0), "margin = -1.0"),
        (lambda: quantile_rule([1.0], margin=math.inf), "margin = inf"),
        (lambda: tail_rule([1.0], target_false_reject=0.0), "target_false_reject = 0.0"),
        (lambda: tail_rule([1.0], target_false_reject=0.7), "target_false_reject = 0.7"),
        (lambda: preview([1.0], [math.nan]), "bad scores"),
    ],
)
def test_unusable_scores_and_settings_are_refused_with_a_fix(call, words: str) -> None:
    with pytest.raises(CalibrationError) as caught:
        call()
    assert isinstance(caught.value, InpEdgeError)
    assert words in caught.value.message and caught.value.fix


def test_preview_gives_every_rule_that_applies_in_order_with_rates() -> None:
    good, bad = list(np.arange(1.0, 11.0)), [9.5, 11.0, 12.0]
    good_only = preview(good)
    assert [result.rule for result in good_only] == ["quantile", "tail"]
    assert all(result.escape_rate is None for result in good_only)
    both = preview(good, bad, quantile=1.0, margin=0.0, target_false_reject=0.5)
    assert [result.rule for result in both] == list(RULES)
    quantile, f1, tail = both
    assert quantile.threshold == 10.0 and quantile.escape_rate == pytest.approx(1 / 3)  # 9.5 escapes
    assert f1.threshold == f1_rule(good, bad).threshold and f1.escape_rate == 0.0
    assert tail.threshold == 5.5 and tail.escape_rate == 0.0 and tail.false_reject_rate == 0.5
    assert [r.expected_false_reject for r in both] == [None, None, 0.5]
    json.dumps([dict(result.params) for result in both])  # plain floats: ready for a control reply


def test_format_preview_is_a_table_with_one_row_per_rule() -> None:
    text = format_preview(preview([1.0, 2.0, 3.0, 4.0], [9.0]))
    lines = text.splitlines()
    assert lines[0].split() == ["rule", "threshold", "false-reject", "%", "escape", "%", "note"]
    assert [line.split()[0] for line in lines[1:]] == list(RULES)
    assert "6" in lines[2].split()[1] and lines[2].split()[3] == "0.00"  # f1 cut at 6.5, no escape
    assert format_preview(preview([1.0, 2.0])).splitlines()[1].split()[3] == "-"  # no bad: no escape rate


def test_collector_keeps_the_newest_scores_and_counts_the_dropped() -> None:
    collector = ScoreCollector(max_scores=3)
    for frame_id, (score, label) in enumerate([(0.1, "good"), (0.9, "bad"), (0.2, "good"), (0.3, "good")]):
        collector.add(score, label, frame_id=frame_id)
    collector.add(0.8, "bad")
    assert collector.counts() == {"good": 2, "bad": 1, "total": 3, "dropped": 2}
    assert collector.good().tolist() == [0.2, 0.3] and collector.bad().tolist() == [0.8]
    assert [sample.frame_id for sample in collector.samples()] == [2, 3, None]
    collector.clear()
    assert collector.counts() == {"good": 0, "bad": 0, "total": 0, "dropped": 0}
    assert collector.good().size == 0


@pytest.mark.parametrize(
    ("score", "label"), [(math.nan, "good"), (math.inf, "bad"), ("0.5", "good"), (0.5, "ok")]
)
def test_collector_refuses_unusable_scores_and_labels(score, label: str) -> None:
    collector = ScoreCollector()
    with pytest.raises(CalibrationError):
        collector.add(score, label)
    assert collector.counts()["total"] == 0


@pytest.mark.parametrize(("max_scores", "total", "dropped"), [(100_000, 8_000, 0), (1_000, 1_000, 7_000)])
def test_collector_is_safe_for_several_threads_adding_at_once(
    max_scores: int, total: int, dropped: int
) -> None:
    collector = ScoreCollector(max_scores=max_scores)
    start = threading.Barrier(8)

    def add_many(worker: int) -> None:
        start.wait()
        for index in range(1_000):
            collector.add(float(index), "bad" if worker % 2 else "good", frame_id=worker * 1_000 + index)

    threads = [threading.Thread(target=add_many, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts = collector.counts()
    assert counts["total"] == total and counts["dropped"] == dropped
    assert counts["good"] + counts["bad"] == total == collector.good().size + collector.bad().size
    if not dropped:
        assert counts["good"] == counts["bad"] == 4_000
        assert len({sample.frame_id for sample in collector.samples()}) == 8_000


def test_the_tail_rule_spread_has_a_floor_relative_to_the_centre_for_a_handful_of_scores() -> None:
    one = tail_rule([2.0], target_false_reject=0.001, min_relative_spread=0.1)
    assert one.threshold == pytest.approx(2.0 + 3.0902323062 * 0.2, abs=1e-6)
    assert "prior: 0.1 × centre" in one.note
    wide = tail_rule([1.0, 2.0, 3.0], target_false_reject=0.001, min_relative_spread=0.1)
    assert wide.params["spread"] == pytest.approx(1.4826)  # the measured spread is wider: it stands
