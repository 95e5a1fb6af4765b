"""Threshold rules for a product, from the scores of parts whose truth is known.

Scores are product scores: higher = more anomalous, and a part fails when ``score > threshold``.
Every rule returns a :class:`RuleResult` with the empirical rates on the scores it was given; none
of them writes anything (applying a threshold is the registry's job).

- ``quantile`` (good parts only): ``threshold = Q + margin × (Q − median)``, with ``Q`` the
  ``quantile`` of the good scores (numpy's linear interpolation). The margin is a share of the spread
  between the typical and the high good part, so the rule reads the same whatever the score scale.
- ``f1`` (good and bad parts): the cut that maximises F1 for the bad class. Candidate cuts are the
  midpoints between consecutive distinct scores (both classes together), plus one cut below the
  smallest and one above the largest score (half the score span away, or 0.5 when all are equal).
  Ties go to the lowest false-reject rate, then the lowest cut; the chosen threshold always sits at
  the midpoint of the gap it falls in, never on a score.
- ``tail`` (good parts only): a robust normal fit to the good scores (centre = median, spread =
  1.4826 × MAD; the standard deviation when the MAD is 0; ``TAIL_SPREAD_FLOOR`` × max(|centre|, 1)
  when both are 0) and ``threshold = centre + z(1 − target) × spread``. Unlike "the largest good
  score", it sits above that score only when the fit says good parts go that high this rarely.

``ScoreCollector`` gathers labelled scores while the service runs (thread-safe, bounded).
"""

from __future__ import annotations

import math
import numbers
import threading
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from edge.errors import InpEdgeError

RULES = ("quantile", "f1", "tail")
GOOD, BAD = "good", "bad"
LABELS = (GOOD, BAD)
MAD_TO_SIGMA = 1.4826  # 1 / z(0.75): the MAD of a normal distribution times this is its sigma
TAIL_SPREAD_FLOOR = 0.01  # spread when every good score is equal, relative to max(|centre|, 1)
ROUGH_BELOW_N = 3  # the tail fit from fewer good scores is flagged as rough


class CalibrationError(InpEdgeError):
    """Scores or rule settings that no threshold can be computed from."""


@dataclass(frozen=True)
class RuleResult:
    """One rule's threshold and what it would do to the scores it was computed from."""

    rule: str
    threshold: float
    params: Mapping[str, float]
    false_reject_rate: float  # share of the given good scores above the threshold (empirical)
    escape_rate: float | None  # share of the given bad scores at or below it; None without bad scores
    expected_false_reject: float | None  # model-based (tail rule), else None
    note: str  # one line a line engineer reads


def _scores(values: Iterable[float], what: str, *, minimum: int) -> np.ndarray:
    try:
        array = np.asarray(values if isinstance(values, np.ndarray) else list(values), np.float64).ravel()
    except (TypeError, ValueError) as error:
        raise CalibrationError(
            f"{what} are not numbers: {error}", fix=f"pass the {what} as a list of floats"
        ) from None
    if array.size < minimum:
        raise CalibrationError(
            f"{what}: {array.size} given, at least {minimum} needed",
            fix=f"inspect more parts and label them before calibrating (at least {minimum} {what})",
        )
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise CalibrationError(
            f"{what} include {bad.size} non-finite value(s) (first at index {bad[0]}: {array[bad[0]]})",
            fix="drop the parts whose score is NaN or infinite (error verdicts) and calibrate again",
        )
    return array


def _check_range(name: str, value: float, low: float, high: float, *, low_open: bool = False) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and (low < value if low_open else low <= value) and value <= high):
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{']' if math.isfinite(high) else ')'}"
        raise CalibrationError(
            f"{name} = {value!r} is outside {interval}", fix=f"choose {name} in {interval}"
        )
    return value


def _result(rule: str, threshold: float, params: dict, good: np.ndarray, note: str) -> RuleResult:
    threshold = float(threshold)
    false_reject = float(np.mean(good > threshold))
    params = {key: float(value) for key, value in params.items()}
    return RuleResult(rule, threshold, params, false_reject, None, None, note)


def _with_escapes(result: RuleResult, bad: np.ndarray) -> RuleResult:
    return replace(result, escape_rate=float(np.mean(bad <= result.threshold)) if bad.size else None)


def quantile_rule(good: Iterable[float], *, quantile: float = 0.99, margin: float = 0.1) -> RuleResult:
    """Threshold = the ``quantile`` of the good scores + ``margin`` × (that quantile − their median)."""
    scores = _scores(good, "good scores", minimum=1)
    quantile = _check_range("quantile", quantile, 0.5, 1.0)
    margin = _check_range("margin", margin, 0.0, math.inf)
    high, median = float(np.quantile(scores, quantile)), float(np.median(scores))
    threshold = high + margin * (high - median)
    note = (
        f"q{quantile:g} of {scores.size} good scores = {high:.4g}, + {margin:g} × (q − median {median:.4g})"
    )
    if quantile < 1.0 and scores.size < 1.0 / (1.0 - quantile):
        note += f"; only {scores.size} good scores, so q{quantile:g} is near the largest one"
    params = {"quantile": quantile, "margin": margin, "quantile_score": high, "median": median}
    return _result("quantile", threshold, params, scores, note)


def _candidate_cuts(good: np.ndarray, bad: np.ndarray) -> np.ndarray:
    distinct = np.unique(np.concatenate([good, bad]))
    span = float(distinct[-1] - distinct[0])
    pad = 0.5 * span if span > 0 else 0.5
    middles = (distinct[:-1] + distinct[1:]) / 2.0
    return np.concatenate([[distinct[0] - pad], middles, [distinct[-1] + pad]])


def f1_rule(good: Iterable[float], bad: Iterable[float]) -> RuleResult:
    """The cut with the best F1 for the bad class; ties → fewest false rejects, then the lowest cut."""
    good_scores = _scores(good, "good scores", minimum=1)
    bad_scores = _scores(bad, "bad scores", minimum=1)
    cuts = _candidate_cuts(good_scores, bad_scores)
    n_bad = bad_scores.size
    false_rejects = good_scores.size - np.searchsorted(np.sort(good_scores), cuts, side="right")
    caught = n_bad - np.searchsorted(np.sort(bad_scores), cuts, side="right")
    f1 = 2.0 * caught / (caught + false_rejects + n_bad)  # 2TP / (2TP + FP + FN), FN = n_bad − TP
    best = int(np.lexsort((cuts, false_rejects, -f1))[0])
    tp, fp = int(caught[best]), int(false_rejects[best])
    precision = tp / (tp + fp) if tp + fp else 0.0
    params = {"f1": float(f1[best]), "precision": precision, "recall": tp / n_bad}
    note = (
        f"best F1 {f1[best]:.3f} on {good_scores.size} good / {n_bad} bad scores "
        f"({tp} bad caught, {fp} good rejected)"
    )
    return _with_escapes(_result("f1", cuts[best], params, good_scores, note), bad_scores)


# Acklam's rational approximation of the inverse normal CDF (relative error < 1.15e-9), refined by
# one Halley step on math.erfc, which brings it to about machine precision.
# fmt: off
_A = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
      1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)
_B = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
      6.680131188771972e01, -1.328068155288572e01)
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
      -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
# fmt: on
_P_LOW = 0.02425


def _poly(coefficients: Sequence[float], x: float) -> float:
    total = 0.0
    for coefficient in coefficients:
        total = total * x + coefficient
    return total


def normal_quantile(p: float) -> float:
    """z such that P(Z ≤ z) = p for a standard normal Z, 0 < p < 1."""
    if not 0.0 < p < 1.0:
        raise CalibrationError(f"p = {p!r} is outside (0, 1)", fix="use a probability in (0, 1)")
    if p < _P_LOW or p > 1.0 - _P_LOW:
        q = math.sqrt(-2.0 * math.log(min(p, 1.0 - p)))
        x = _poly(_C, q) / (_poly(_D, q) * q + 1.0)
        x = x if p < _P_LOW else -x
    else:
        q, r = p - 0.5, (p - 0.5) ** 2
        x = _poly(_A, r) * q / (_poly(_B, r) * r + 1.0)
    error = 0.5 * math.erfc(-x / math.sqrt(2.0)) - p
    u = error * math.sqrt(2.0 * math.pi) * math.exp(x * x / 2.0)
    return x - u / (1.0 + x * u / 2.0)


def _robust_fit(scores: np.ndarray) -> tuple[float, float, str]:
    centre = float(np.median(scores))
    mad = float(np.median(np.abs(scores - centre)))
    if mad > 0:
        return centre, MAD_TO_SIGMA * mad, "1.4826 × MAD"
    std = float(np.std(scores, ddof=1)) if scores.size > 1 else 0.0
    if std > 0:
        return centre, std, "standard deviation (MAD is 0)"
    return centre, TAIL_SPREAD_FLOOR * max(abs(centre), 1.0), "floor (all good scores equal)"


def tail_rule(
    good: Iterable[float], *, target_false_reject: float = 0.001, min_relative_spread: float = 0.0
) -> RuleResult:
    """Threshold = median + z(1 − target) × robust spread of the good scores (see the module doc).

    ``min_relative_spread``: the spread is at least this share of the centre (a prior for a handful
    of scores, whose measured spread says little; enrollment uses it)."""
    scores = _scores(good, "good scores", minimum=1)
    target = _check_range("target_false_reject", target_false_reject, 0.0, 0.5, low_open=True)
    centre, spread, spread_from = _robust_fit(scores)
    if spread < min_relative_spread * abs(centre):
        spread, spread_from = min_relative_spread * abs(centre), f"prior: {min_relative_spread:g} × centre"
    z = normal_quantile(1.0 - target)
    threshold = centre + z * spread
    note = f"normal fit to {scores.size} good scores: {centre:.4g} + {z:.3f} × {spread:.4g} ({spread_from})"
    if scores.size < ROUGH_BELOW_N:
        note += f"; rough estimate from n={scores.size} good scores, collect more"
    params = {"target_false_reject": target, "z": z, "centre": centre, "spread": spread}
    return replace(_result("tail", threshold, params, scores, note), expected_false_reject=target)


def preview(
    good: Iterable[float],
    bad: Iterable[float] = (),
    *,
    quantile: float = 0.99,
    margin: float = 0.1,
    target_false_reject: float = 0.001,
) -> tuple[RuleResult, ...]:
    """Every rule that applies (f1 only with bad scores), in RULES order, with escape rates when bad given."""
    good_scores = _scores(good, "good scores", minimum=1)
    bad_scores = _scores(bad, "bad scores", minimum=0)
    results = [quantile_rule(good_scores, quantile=quantile, margin=margin)]
    if bad_scores.size:
        results.append(f1_rule(good_scores, bad_scores))
    results.append(tail_rule(good_scores, target_false_reject=target_false_reject))
    return tuple(_with_escapes(result, bad_scores) for result in results)


def format_preview(results: Sequence[RuleResult]) -> str:
    """A plain-text table (rule, threshold, false-reject %, escape %, note) for the CLIs."""
    rows = [("rule", "threshold", "false-reject %", "escape %", "note")]
    for r in results:
        escape = "-" if r.escape_rate is None else f"{100.0 * r.escape_rate:.2f}"
        rows.append((r.rule, f"{r.threshold:.6g}", f"{100.0 * r.false_reject_rate:.2f}", escape, r.note))
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    return "\n".join(
        "  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[4]]) for row in rows
    )


@dataclass(frozen=True)
class LabelledScore:
    score: float
    label: str  # "good" | "bad"
    frame_id: int | None = None


class ScoreCollector:
    """Labelled scores gathered while the service runs; thread-safe; keeps the newest ``max_scores``."""

    def __init__(self, max_scores: int = 100_000) -> None:
        if int(max_scores) < 1:
            raise CalibrationError(f"max_scores = {max_scores} must be at least 1", fix="use max_scores >= 1")
        self.max_scores = int(max_scores)
        self._lock = threading.Lock()
        self._samples: deque[LabelledScore] = deque(maxlen=self.max_scores)
        self._dropped = 0

    def add(self, score: float, label: str = GOOD, frame_id: int | None = None) -> None:
        """Record one part's score; the oldest is dropped (and counted) when ``max_scores`` are held."""
        if label not in LABELS:
            raise CalibrationError(
                f"label {label!r} is not one of {LABELS}", fix="label a part 'good' or 'bad'"
            )
        if not isinstance(score, numbers.Real) or not math.isfinite(score):
            raise CalibrationError(
                f"score {score!r} of frame {frame_id} is not a finite number",
                fix="collect only parts with a real score (not error verdicts)",
            )
        with self._lock:
            self._dropped += len(self._samples) == self.max_scores
            self._samples.append(LabelledScore(float(score), label, frame_id))

    def samples(self) -> tuple[LabelledScore, ...]:
        with self._lock:
            return tuple(self._samples)

    def _of(self, label: str) -> np.ndarray:
        with self._lock:
            return np.array([s.score for s in self._samples if s.label == label], np.float64)

    def good(self) -> np.ndarray:
        return self._of(GOOD)

    def bad(self) -> np.ndarray:
        return self._of(BAD)

    def counts(self) -> dict[str, int]:
        """{"good", "bad", "total" (held now), "dropped" (oldest scores pushed out since the last clear)}."""
        with self._lock:
            good = sum(1 for sample in self._samples if sample.label == GOOD)
            total = len(self._samples)
            return {GOOD: good, BAD: total - good, "total": total, "dropped": self._dropped}

    def clear(self) -> None:
        with self._lock:
            self._samples.clear()
            self._dropped = 0
