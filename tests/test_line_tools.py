"""The line tally (escapes, false rejects, seq completeness) and bench-pipeline on a small real model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge.cli import main
from edge.tools.line_report import LineTally, format_report
from tests.contract_models import brightness_model, save


def header(seq: int, verdict: str, label: str | None, *, reason: str = "", capture_ms: int = 0) -> dict:
    return {
        "seq": seq,
        "verdict": verdict,
        "reason": reason,
        "capture_wall_ns": capture_ms * 1_000_000,
        "frame_meta": {"label": label} if label else {},
        "latency_ms": {"model_ms": 10.0 + seq},
    }


def test_tally_counts_escapes_false_rejects_and_missing_seqs() -> None:
    tally = LineTally()
    rows = [
        header(0, "pass", "good", capture_ms=0),
        header(1, "pass", "defect", capture_ms=100),  # an escape
        header(2, "fail", "good", capture_ms=200),  # a false reject
        header(3, "fail", "defect", capture_ms=300),
        header(5, "error", "good", reason="overrun: inspect queue full", capture_ms=500),
    ]
    for row in rows:
        assert tally.add(row, received_wall_ns=row["capture_wall_ns"] + 20_000_000)
    assert not tally.add(rows[0], received_wall_ns=0)  # a duplicate is not counted twice
    report = tally.report()
    assert (report.parts, report.escapes, report.false_rejects) == (5, 1, 1)
    assert (report.labelled_defects, report.labelled_good) == (2, 3)
    assert report.verdicts == {"pass": 2, "fail": 2, "error": 1} and report.errors_by_reason == {"overrun": 1}
    assert report.missing_seqs == (4,) and not report.seq_complete
    assert report.fps == pytest.approx(4 / 0.5) and report.latency_ms.p50_ms == pytest.approx(20.0)
    assert "escapes 1 of 2" in format_report(report) and "MISSING [4]" in format_report(report)


def test_recovered_verdicts_complete_the_seq_without_a_latency() -> None:
    tally = LineTally()
    tally.add(header(1, "pass", "good"), received_wall_ns=5_000_000)
    tally.add(header(0, "pass", "good"), received_wall_ns=None)
    report = tally.report()
    assert report.seq_complete and report.recovered == 1 and report.latency_ms.max_ms == pytest.approx(5.0)


def _bench_argv(model: Path, frame_px: int) -> list[str]:
    """A short bench-pipeline run: 20 parts, one repeat, one thread."""
    short = ["--parts", "20", "--repeats", "1", "--threads", "1"]
    return ["bench-pipeline", str(model), *short, "--frame-px", str(frame_px)]


def test_bench_pipeline_measures_the_path_beside_the_bare_model(tmp_path: Path) -> None:
    model = save(brightness_model(64, work=2), tmp_path / "model.onnx")
    out = tmp_path / "bench.json"
    argv = _bench_argv(model, frame_px=128)
    assert main([*argv, "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["all_verdicts_received"]
    assert [block["kind"] for block in doc["blocks"]] == ["bare", "pipeline", "latency"]
    assert all(block["parts"] == 20 and block["fps"] > 0 for block in doc["blocks"])
    for block in doc["blocks"][1:]:
        assert block["counters"]["received"] == 20 and block["counters"]["parts"] == 20
        assert block["counters"].get("error", 0) == 0 and block["seq_complete"]
    assert doc["throughput_ratio"] == pytest.approx(doc["pipeline_fps"] / doc["bare_fps"])
    assert doc["pipeline_latency_ms"]["p50"] <= doc["pipeline_latency_ms"]["p99"]


def test_fit_study_auroc_matches_sklearn_with_ties() -> None:
    from sklearn.metrics import roc_auc_score

    from edge.tools.fit_study import auroc

    rng = np.random.default_rng(0)
    scores = rng.integers(0, 10, 200).astype(np.float64)  # many ties
    labels = rng.integers(0, 2, 200)
    assert auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))


def test_fit_study_puts_the_part_in_a_wider_frame_with_both_rois() -> None:
    from edge.tools.fit_study import widen

    image = np.arange(60 * 60 * 3, dtype=np.uint32).reshape(60, 60, 3).astype(np.uint8)
    frame, square, wide = widen(image, 4 / 3)
    assert frame.shape == (60, 80, 3) and (wide.width, wide.height) == (80, 60)
    assert np.array_equal(frame[:, square.x : square.x + square.width], image)


def test_bench_pipeline_times_a_product_beside_the_plain_pipeline(tmp_path: Path) -> None:
    from tests.products_cli_support import good_folder, model_file

    model, state = model_file(tmp_path / "models"), tmp_path / "state"
    parts = good_folder(tmp_path / "good", 4, seed=1)
    enroll = ["enroll", "--product", "disk", "--shots", "4", "--images", str(parts), "--model", str(model)]
    assert main([*enroll, "--state-dir", str(state), "--yes"]) == 0
    out = tmp_path / "bench.json"
    argv = _bench_argv(model, frame_px=64)
    assert main([*argv, "--product", "disk", "--state-dir", str(state), "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert [block["kind"] for block in doc["blocks"]] == ["bare", "pipeline", "latency", "product-latency"]
    scored = doc["blocks"][-1]
    assert (
        scored["seq_complete"]
        and scored["counters"]["received"] == 20
        and scored["counters"].get("error", 0) == 0
    )
    assert doc["product"] == {"name": "disk", "version": 1, "fusion": "fused"}
    assert doc["product_latency_share"] == pytest.approx(
        doc["product_latency_ms"]["p50"] / doc["pipeline_latency_ms"]["p50"] - 1.0
    )
    other = save(brightness_model(32, patch_features=True, work=1), tmp_path / "other.onnx")
    assert main(["bench-pipeline", str(other), "--product", "disk", "--state-dir", str(state)]) == 2
