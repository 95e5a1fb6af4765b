"""The speed benchmark: its ratios (pure) and its timing code on real onnxruntime sessions.

The timing tests use tiny models and 1-run blocks: they check the structure and the sanity of the
results (one entry per session, positive medians, ratios computed from those medians), never how
fast anything is.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge.model import contract as c
from edge.model.session import SessionSettings, open_session
from export import cli
from export.commands import write_results
from export.commands.speed import SPEED_MODEL_CHOICES, render_speed, run_artifact_speed, run_speed
from export.speed import SPEED_MODEL_NAMES, SpeedModel, summarise, time_interleaved
from tests.test_artifact import TinyArtifact, build_tiny_artifact, build_variant

PEAK_PX = 128  # the matrix-product peak is measured on small matrices here (it is not under test)


def _doc(fp32_ms: float, int8_ms: float, bare_ms: float, bare_flops: int) -> dict:
    timing = {
        kind: {"median_ms": value, "block_medians_ms": [value]}
        for kind, value in (("fp32", fp32_ms), ("int8", int8_ms), ("bare-fp32", bare_ms))
    }
    return {
        "peak": {"fp32_gflops": 400.0, "int8_gops": 1600.0},
        "models": {
            "m": {
                "timing": timing,
                "flops": {"fp32": bare_flops, "int8": bare_flops, "bare-fp32": bare_flops},
            }
        },
    }


def test_summary_ratios_come_from_the_same_run() -> None:
    doc = _doc(fp32_ms=40.0, int8_ms=20.0, bare_ms=38.0, bare_flops=int(10e9))
    row = summarise(doc)["m"]
    assert row["int8_speedup"] == pytest.approx(2.0)
    assert row["pipeline_overhead_pct"] == pytest.approx(100 * (40 / 38 - 1))
    # 10 GFLOP in 38 ms = 263 GFLOP/s, against a 400 GFLOP/s peak
    assert row["bare_fp32_gflops"] == pytest.approx(10e9 / 38e-3 / 1e9)
    assert row["bare_fp32_fraction_of_peak"] == pytest.approx(10e9 / 38e-3 / 1e9 / 400.0)


def test_speed_table_shows_each_ratio() -> None:
    doc = _doc(fp32_ms=40.0, int8_ms=20.0, bare_ms=38.0, bare_flops=int(10e9))
    doc["summary"] = summarise(doc)
    table = render_speed(doc)
    assert "| m | 10.00 | 40.0 | 20.0 | 2.00× | 38.0 | +5.3 % | 66 % |" in table


def test_the_cli_choices_are_the_speed_models() -> None:
    assert SPEED_MODEL_CHOICES == SPEED_MODEL_NAMES


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyArtifact:
    return build_tiny_artifact(tmp_path_factory)


def check_timing(timing: dict, labels: list[str], repeats: int) -> None:
    assert list(timing) == labels  # one entry per session, in order
    for entry in timing.values():
        blocks = entry["block_medians_ms"]
        assert len(blocks) == repeats and all(ms > 0 and np.isfinite(ms) for ms in blocks)
        assert entry["median_ms"] == pytest.approx(float(np.median(blocks)))


def test_time_interleaved_gives_one_positive_median_per_session(tiny: TinyArtifact) -> None:
    settings = SessionSettings(providers=("cpu",), intra_op_threads=1, warmup_runs=0)
    sessions = {
        "a": open_session(tiny.onnx_path, settings).session,
        "b": open_session(tiny.onnx_path, settings).session,
    }
    image = np.zeros((1, 64, 64, 3), dtype=np.uint8)
    timing = time_interleaved(
        sessions,
        {"a": {c.INPUT_IMAGE: image}, "b": {c.INPUT_IMAGE: image}},
        runs=2,
        repeats=2,
        progress=False,
    )
    check_timing(timing, ["a", "b"], repeats=2)


def test_artifact_speed_times_each_artifact_and_relates_it_to_the_first(
    tiny: TinyArtifact, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    fp16 = build_variant(tiny, "fp16", tmp_path_factory)
    doc, json_path = run_artifact_speed(
        [tiny.onnx_path, fp16], tmp_path / "speed", runs=1, repeats=2, progress=False, peak_size=PEAK_PX
    )
    labels = [f"1:{tiny.onnx_path.name}", f"2:{fp16.name}"]
    check_timing({label: doc["artifacts"][label]["timing"] for label in labels}, labels, repeats=2)
    assert [doc["artifacts"][label]["precision"] for label in labels] == ["fp32", "fp16"]
    first, second = (doc["artifacts"][label]["timing"]["median_ms"] for label in labels)
    assert doc["summary"][labels[0]]["speedup_vs_first"] == pytest.approx(1.0)
    assert doc["summary"][labels[1]]["speedup_vs_first"] == pytest.approx(first / second)
    assert all(doc["artifacts"][label]["flops"] > 0 for label in labels)
    assert json.loads(json_path.read_text()) == json.loads(json.dumps(doc, default=str))
    assert all(label in (tmp_path / "speed" / "speed.md").read_text() for label in labels)


@pytest.mark.slow
def test_run_speed_exports_times_and_summarises_a_tiny_model(tmp_path: Path) -> None:
    spec = SpeedModel("effl0-64", "efficientnet_lite0", 64, random_weights=True)
    doc, json_path = run_speed(tmp_path, specs=[spec], runs=1, repeats=2, progress=False, peak_size=PEAK_PX)
    assert list(doc["models"]) == ["effl0-64"] and json_path == tmp_path / "speed.json"
    timing = doc["models"]["effl0-64"]["timing"]
    check_timing(timing, ["fp32", "bare-fp32", "int8"], repeats=2)
    row = doc["summary"]["effl0-64"]
    ms = {kind: entry["median_ms"] for kind, entry in timing.items()}
    assert row["int8_speedup"] == pytest.approx(ms["fp32"] / ms["int8"])
    assert row["pipeline_overhead_pct"] == pytest.approx(100 * (ms["fp32"] / ms["bare-fp32"] - 1))
    assert doc["models"]["effl0-64"]["flops"]["bare-fp32"] > 0
    cpu = SessionSettings(providers=("cpu",), warmup_runs=0)
    precisions = {
        kind: open_session(tmp_path / f"effl0-64-{kind}.onnx", cpu).info.precision
        for kind in ("fp32", "int8")
    }
    assert precisions == {"fp32": "fp32", "int8": "int8"}  # the INT8 file says so


@pytest.mark.parametrize("flag", ["--runs", "--repeats"])
def test_runs_or_repeats_below_one_are_a_usage_error_before_any_work(
    flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["speed", flag, "0", "--out", str(tmp_path / "speed")]) == 2
    assert "0 is below the minimum 1" in capsys.readouterr().err
    assert not (tmp_path / "speed").exists()


def test_results_json_is_strict_with_non_finite_numbers_as_null(tmp_path: Path) -> None:
    doc = {"median_ms": float("nan"), "peak": [float("inf"), 2.5], "path": tmp_path}
    write_results(tmp_path / "docs" / "results.json", doc)
    text = (tmp_path / "docs" / "results.json").read_text()
    assert json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in strict JSON")) == {
        "median_ms": None,
        "peak": [None, 2.5],
        "path": str(tmp_path),
    }
