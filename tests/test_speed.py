from __future__ import annotations

import pytest

from export.speed import render_speed, summarise


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
