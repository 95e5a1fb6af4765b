"""Tally a run of verdicts against the parts' known labels: escapes, false rejects, rate, latency.

Used by the demo (the generated line carries each part's label in ``frame_meta``) and by
``inp-edge bench-pipeline``. Pure: headers in, a ``LineReport`` out.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.decision import reason_kind

DEFECT, GOOD = "defect", "good"


@dataclass(frozen=True)
class LatencySummary:
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


@dataclass(frozen=True)
class LineReport:
    parts: int
    verdicts: dict[str, int]  # pass / fail / error
    errors_by_reason: dict[str, int]
    escapes: int  # defective parts that passed
    false_rejects: int  # good parts that failed
    labelled_defects: int
    labelled_good: int
    seq_complete: bool  # every seq from 0 to the last one accounted for
    missing_seqs: tuple[int, ...]
    fps: float  # verdicts per second of capture time
    latency_ms: LatencySummary | None  # capture → received (wall clock, same host)
    model_ms: LatencySummary | None
    recovered: int = 0  # verdicts fetched from the control socket (missed on PUB/SUB)

    @property
    def false_reject_rate(self) -> float:
        return self.false_rejects / self.labelled_good if self.labelled_good else 0.0


def summarise(values_ms: list[float]) -> LatencySummary | None:
    if not values_ms:
        return None
    p50, p90, p99 = np.percentile(np.asarray(values_ms), [50, 90, 99])
    return LatencySummary(float(p50), float(p90), float(p99), float(max(values_ms)))


@dataclass
class LineTally:
    """Feed every verdict header once (received or recovered); ``report`` at the end."""

    headers: dict[int, dict[str, Any]] = field(default_factory=dict)
    received_ms: dict[int, float] = field(default_factory=dict)
    recovered: int = 0

    def add(self, header: dict[str, Any], received_wall_ns: int | None) -> bool:
        """False for a seq already counted (a duplicate)."""
        seq = int(header["seq"])
        if seq in self.headers:
            return False
        self.headers[seq] = header
        if received_wall_ns is None:
            self.recovered += 1
        else:
            self.received_ms[seq] = (received_wall_ns - int(header["capture_wall_ns"])) / 1e6
        return True

    def report(self) -> LineReport:
        headers = [self.headers[seq] for seq in sorted(self.headers)]
        verdicts = Counter(h["verdict"] for h in headers)
        reasons = Counter(reason_kind(h["reason"]) for h in headers if h["verdict"] == "error")
        labels = [(h.get("frame_meta") or {}).get("label") for h in headers]
        escapes = sum(
            1 for h, label in zip(headers, labels, strict=True) if label == DEFECT and h["verdict"] == "pass"
        )
        rejects = sum(
            1 for h, label in zip(headers, labels, strict=True) if label == GOOD and h["verdict"] == "fail"
        )
        last = max(self.headers) if self.headers else -1
        missing = tuple(seq for seq in range(last + 1) if seq not in self.headers)
        captures = sorted(int(h["capture_wall_ns"]) for h in headers)
        span_s = (captures[-1] - captures[0]) / 1e9 if len(captures) > 1 else 0.0
        model = [h["latency_ms"]["model_ms"] for h in headers if "model_ms" in h.get("latency_ms", {})]
        return LineReport(
            parts=len(headers),
            verdicts=dict(verdicts),
            errors_by_reason=dict(reasons),
            escapes=escapes,
            false_rejects=rejects,
            labelled_defects=labels.count(DEFECT),
            labelled_good=labels.count(GOOD),
            seq_complete=not missing,
            missing_seqs=missing,
            fps=(len(captures) - 1) / span_s if span_s > 0 else 0.0,
            latency_ms=summarise(list(self.received_ms.values())),
            model_ms=summarise(model),
            recovered=self.recovered,
        )


def format_report(report: LineReport) -> str:
    v = report.verdicts
    lines = [
        f"parts        {report.parts}: {v.get('pass', 0)} pass, {v.get('fail', 0)} fail, {v.get('error', 0)} error"
        + (
            f" ({', '.join(f'{k} {n}' for k, n in report.errors_by_reason.items())})"
            if report.errors_by_reason
            else ""
        ),
        f"seq          {'complete' if report.seq_complete else f'MISSING {list(report.missing_seqs)[:10]}'}"
        + (f" ({report.recovered} recovered from the control socket)" if report.recovered else ""),
    ]
    if report.labelled_defects or report.labelled_good:
        lines.append(
            f"quality      escapes {report.escapes} of {report.labelled_defects} defective parts; false rejects "
            f"{report.false_rejects} of {report.labelled_good} good parts ({100 * report.false_reject_rate:.1f} %)"
        )
    lines.append(f"rate         {report.fps:.1f} parts/s (capture times)")
    for name, summary in (("capture->rx", report.latency_ms), ("model", report.model_ms)):
        if summary is not None:
            lines.append(
                f"{name:<12} p50 {summary.p50_ms:.1f} ms  p90 {summary.p90_ms:.1f} ms  p99 {summary.p99_ms:.1f} ms  "
                f"max {summary.max_ms:.1f} ms"
            )
    return "\n".join(lines)
