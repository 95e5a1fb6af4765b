"""``inp-edge bench-model`` and the pieces it is made of, plus: edge/ runs with torch absent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge.bench import LatencyStats, bench_model, efficiency, latency_stats, median_stats, write_json_atomic
from edge.cli import main
from edge.model.flops import FlopCount
from edge.model.session import SessionSettings
from edge.peak import PeakResult, matmul_peak
from tests.tiny_models import save_model

REPO = Path(__file__).resolve().parents[1]
FAST = ["--providers", "cpu", "--threads", "1", "--runs", "5", "--warmup", "1", "--repeats", "2"]


def test_bench_model_cli_writes_json_and_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = save_model(tmp_path, kind="conv", height=16, width=16)
    out = tmp_path / "reports" / "bench.json"
    assert main(["bench-model", str(model), *FAST, "--peak-size", "128", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["schema"] == "inp-edge.bench-model/1"
    assert doc["providers_in_use"] == ["CPUExecutionProvider"] and doc["runs"] == 5 and doc["repeats"] == 2
    assert set(doc["latency_ms"]) == {"p50_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms", "max_ms"}
    assert len(doc["latency_by_repeat"]) == 2 and doc["throughput_fps"] > 0
    assert doc["model"]["model_id"] == "tiny-ü-test" and doc["model"]["input_hw"] == [16, 16]
    eff = doc["efficiency"]
    assert eff["flops_by_op_type"] == {"Conv": 2 * 3 * 9 * 16 * 16}
    assert eff["peak"]["size"] == 128 and eff["peak_kind"] == "fp32" and eff["fraction_of_peak"] > 0
    table = capsys.readouterr().out
    assert "latency ms   p50" in table and "% of the fp32 peak" in table
    assert list(out.parent.iterdir()) == [out]  # the atomic write left no temp file


def test_bench_model_no_peak_skips_the_peak(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    assert main(["bench-model", str(save_model(tmp_path)), *FAST, "--no-peak", "--json", str(out)]) == 0
    eff = json.loads(out.read_text())["efficiency"]
    assert eff["peak"] is None and eff["fraction_of_peak"] is None and eff["achieved_gflops"] > 0


def test_bench_without_onnx_still_times_and_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    settings = SessionSettings(providers=("cpu",), intra_op_threads=1, warmup_runs=1)
    result = bench_model(save_model(tmp_path), settings, runs=3, warmup=0, repeats=1, progress=False)
    assert result.latency_ms.p50_ms > 0 and result.efficiency.model_gflop is None
    assert result.efficiency.peak is None and len(result.notes) == 2
    assert all("pip install 'onnx" in note for note in result.notes)


def test_bench_model_broken_model_exits_2_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "broken.onnx"
    model.write_bytes(save_model(tmp_path).read_bytes()[:100])
    assert main(["bench-model", str(model), *FAST]) == 2
    err = capsys.readouterr().err
    assert f"{model} is truncated" in err and "fix:" in err and "Traceback" not in err


def test_unavailable_provider_exits_2_naming_the_package(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench-model", str(save_model(tmp_path)), "--providers", "cuda", "--no-peak"]) == 2
    assert "onnxruntime-gpu" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "status"), [(["--help"], 0), (["bench-model", "--help"], 0), ([], 2), (["bench-model"], 2)]
)
def test_cli_exit_status(argv: list[str], status: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == status
    if argv == ["bench-model", "--help"]:
        assert "What is measured" in capsys.readouterr().out


def test_bad_run_count_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench-model", "m.onnx", "--runs", "0"]) == 2
    assert "below the minimum 1" in capsys.readouterr().err


def test_latency_stats_percentiles() -> None:
    stats = latency_stats([float(ms) for ms in range(1, 101)])
    assert (stats.p50_ms, stats.min_ms, stats.max_ms, stats.mean_ms) == (50.5, 1.0, 100.0, 50.5)
    assert stats.p90_ms == pytest.approx(90.1) and stats.p99_ms == pytest.approx(99.01)


def test_median_over_repeats_ignores_one_disturbed_repeat() -> None:
    steady = LatencyStats(10, 11, 12, 10, 9, 13)
    disturbed = LatencyStats(50, 60, 70, 55, 40, 80)
    assert median_stats([steady, disturbed, steady]) == steady


@pytest.mark.parametrize(
    ("precision", "fp16_gflops", "kind", "fraction"),
    [
        ("fp32", None, "fp32", 0.5),
        ("int8", None, "int8", 0.125),
        ("fp16", 400.0, "fp16", 0.25),
        ("fp16", None, "fp32", 0.5),
    ],
)
def test_efficiency_compares_with_the_peak_of_the_precision(
    precision: str, fp16_gflops: float | None, kind: str, fraction: float
) -> None:
    peak = PeakResult(2048, 5, ("CPUExecutionProvider",), 200.0, 800.0, fp16_gflops)
    latency = LatencyStats(10.0, 11.0, 12.0, 10.0, 9.0, 13.0)  # p50 10 ms
    eff = efficiency(FlopCount(1_000_000_000, {"MatMul": 1_000_000_000}), latency, peak, precision)
    assert eff.achieved_gflops == pytest.approx(100.0)
    assert eff.peak_kind == kind and eff.fraction_of_peak == pytest.approx(fraction)


def test_matmul_peak_measures_both_kinds() -> None:
    peak = matmul_peak(["cpu"], size=128, runs=2, threads=1)
    assert peak.fp32_gflops > 0 and peak.int8_gops > 0 and peak.fp16_gflops is None
    assert peak.providers_in_use == ("CPUExecutionProvider",)


def test_write_json_atomic_replaces_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text("old")
    write_json_atomic(path, {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1} and list(tmp_path.iterdir()) == [path]


BLOCK_TORCH = """
import importlib, importlib.abc, pkgutil, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "export"):
            raise ImportError(f"{name} is blocked: edge/ must run without it")

sys.meta_path.insert(0, Block())
import edge
for module in pkgutil.walk_packages(edge.__path__, "edge."):
    importlib.import_module(module.name)
import edge.cli
assert edge.cli.main(["--help"]) == 0
sys.exit(edge.cli.main(sys.argv[1:]))
"""


def test_edge_imports_and_cli_runs_without_torch(tmp_path: Path) -> None:
    model = save_model(tmp_path)
    out = tmp_path / "bench.json"
    argv = ["bench-model", str(model), *FAST, "--no-peak", "--json", str(out)]
    done = subprocess.run(
        [sys.executable, "-c", BLOCK_TORCH, *argv], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "usage: inp-edge" in done.stdout and json.loads(out.read_text())["runs"] == 5
