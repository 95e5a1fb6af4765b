"""Recalibration while the service runs: collect labelled product scores, preview rules, pick one.

``LiveCalibration`` wraps a ``ScoreCollector``. While a label is set (``start``), the inspect thread
hands it the product score of every part that is not an error (``offer``). Scores only mean
something for the scoring they came from (the product's normalisation and memory), so the session
remembers that scoring (``scoring_key``): parts scored by another product, or by a re-enrolled one,
are not collected, and a preview or an apply for another scoring is refused until the scores are
cleared. Applying a threshold changes none of that (thresholds are not part of the key).
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from edge.control import RequestError
from edge.products.calibration import BAD, GOOD, RULES, RuleResult, ScoreCollector, preview
from edge.products.product import CalibrationRecord, Product, utc_now_iso

APPLY_RULES = (*RULES, "manual")


def scoring_key(product: Product) -> Hashable:
    """What a product score depends on (not the thresholds): equal keys, comparable scores."""
    return (
        product.name,
        product.fusion,
        product.inp_norm,
        product.memory_norm,
        product.enrollment.get("enrolled_at"),
    )


class LiveCalibration:
    def __init__(self, max_scores: int = 100_000) -> None:
        self.collector = ScoreCollector(max_scores)
        self.label: str | None = None  # read by the inspect thread for every part: one attribute read
        self._key: Hashable | None = None
        self._product_label = ""
        self._lock = threading.Lock()

    def start(self, label: str, product: Product) -> None:
        """Collect the following parts' scores with ``label`` (counts kept across labels)."""
        key = scoring_key(product)
        with self._lock:
            if self.collector.counts()["total"] and key != self._key:
                raise RequestError(
                    f"calibrate_start: the {self.collector.counts()['total']} scores held are of "
                    f"{self._product_label}, scored another way than the active {product.label()}",
                    fix='drop them first ({"cmd": "calibrate_clear"}), or switch back to that product',
                )
            self._key, self._product_label = key, product.label()
            self.label = label

    def stop(self) -> None:
        self.label = None

    def clear(self) -> None:
        with self._lock:
            self.label = None
            self.collector.clear()
            self._key, self._product_label = None, ""

    def offer(self, score: float, product: Product, frame_id: int) -> None:
        """One part's product score, from the inspect thread (kept only while a label is set)."""
        label = self.label
        if label is None or scoring_key(product) != self._key:
            return
        self.collector.add(float(score), label, frame_id)

    def check_product(self, product: Product, command: str) -> None:
        if self.collector.counts()["total"] and scoring_key(product) != self._key:
            raise RequestError(
                f"{command}: the scores held are of {self._product_label}, not of the active {product.label()}",
                fix='collect scores of the active product: {"cmd": "calibrate_clear"}, then calibrate_start',
            )

    def status(self) -> dict[str, Any]:
        return {
            "collecting": self.label,
            "counts": self.collector.counts(),
            "product": self._product_label or None,
        }

    def preview(self, params: dict[str, float]) -> tuple[RuleResult, ...]:
        return preview(self.collector.good(), self.collector.bad(), **params)

    def result(self, rule: str, params: dict[str, float]) -> RuleResult:
        """The rule's result on the scores held (``f1`` needs bad scores)."""
        if rule == "f1" and not self.collector.counts()[BAD]:
            raise RequestError(
                "apply: rule f1 needs scores of parts confirmed bad, and none were collected",
                fix='collect some: {"cmd": "calibrate_start", "label": "bad"}, or use rule quantile or tail',
            )
        found = [result for result in self.preview(params) if result.rule == rule]
        return found[0]


def calibrated(product: Product, result: RuleResult, counts: dict[str, int]) -> Product:
    """``product`` with the rule's threshold (image and pixel) and its calibration record (not saved)."""
    threshold = result.threshold
    thresholds = replace(
        product.thresholds,
        image=threshold,
        pixel=threshold,
        source=f"{result.rule} calibration: {result.note}",
    )
    expected = result.expected_false_reject
    record = CalibrationRecord(
        at=utc_now_iso(),
        rule=result.rule,
        threshold=threshold,
        n_good=counts[GOOD],
        n_bad=counts[BAD],
        expected_false_reject=expected if expected is not None else result.false_reject_rate,
        expected_escape=result.escape_rate,
        note=result.note,
    )
    return product.with_thresholds(thresholds, record)


def manual_result(threshold: float, good: Sequence[float], bad: Sequence[float]) -> RuleResult:
    """A threshold the operator typed, with its rates on the scores held (if any)."""
    good, bad = np.asarray(good, np.float64), np.asarray(bad, np.float64)
    false_reject = float(np.mean(good > threshold)) if good.size else 0.0
    escape = float(np.mean(bad <= threshold)) if bad.size else None
    note = f"set by hand to {threshold:.6g}"
    return RuleResult("manual", threshold, {"threshold": threshold}, false_reject, escape, None, note)
