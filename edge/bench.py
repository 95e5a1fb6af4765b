"""Speed of the model on this device, and how it compares with what the hardware can do.

``bench_model`` times the real model one image at a time, counts its FLOPs from the graph, and
reports latency percentiles, throughput, achieved GFLOP/s and the fraction of the matrix-product
peak (``matmul_peak``, edge/peak.py, same providers) for the model's precision.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, astuple, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from edge.atomic import write_text_atomic
from edge.errors import ConfigError, MissingDependencyError
from edge.model.flops import FlopCount, count_flops
from edge.model.session import SessionSettings, open_session, run_model
from edge.peak import PeakResult, matmul_peak, peak_for_precision

__all__ = ["BenchResult", "Efficiency", "LatencyStats", "PeakResult", "bench_model", "matmul_peak"]

BENCH_SCHEMA = "inp-edge.bench-model/1"


@dataclass(frozen=True)
class LatencyStats:
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float


@dataclass(frozen=True)
class Efficiency:
    """The model's arithmetic against the measured matrix-product peak."""

    model_gflop: float | None  # per image, from the graph; None when onnx is absent
    flops_by_op_type: dict[str, int]
    achieved_gflops: float | None  # model_gflop / p50 latency
    peak: PeakResult | None
    peak_kind: str | None  # the peak the model is compared with: fp32 | fp16 | int8
    fraction_of_peak: float | None


@dataclass(frozen=True)
class BenchResult:
    """What ``inp-edge bench-model`` measured (written as JSON, printed as a table)."""

    model: dict[str, Any]  # path, model_id, encoder, precision, input_hw, sha256
    providers_requested: tuple[str, ...]
    providers_in_use: tuple[str, ...]
    intra_op_threads: int
    runs: int
    warmup: int
    repeats: int
    load_s: float
    latency_ms: LatencyStats  # each statistic: the median over the repeats
    latency_by_repeat: tuple[LatencyStats, ...]
    throughput_fps: float  # one image at a time: 1000 / mean latency
    efficiency: Efficiency
    notes: tuple[str, ...] = ()
    host: dict[str, Any] = field(default_factory=dict)
    schema: str = BENCH_SCHEMA


def latency_stats(times_ms: Sequence[float]) -> LatencyStats:
    """Percentiles (linear interpolation), mean, min and max of one repeat's latencies."""
    values = np.asarray(times_ms, dtype=np.float64)
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return LatencyStats(
        float(p50), float(p90), float(p99), float(values.mean()), float(values.min()), float(values.max())
    )


def median_stats(repeats: Sequence[LatencyStats]) -> LatencyStats:
    """Each statistic's median over the repeats (robust to one disturbed repeat)."""
    columns = zip(*(astuple(stats) for stats in repeats), strict=True)
    return LatencyStats(*(float(np.median(column)) for column in columns))


def efficiency(
    flop_count: FlopCount | None, latency: LatencyStats, peak: PeakResult | None, precision: str
) -> Efficiency:
    """Achieved GFLOP/s (at the p50 latency) and its fraction of the peak for ``precision`` (pure)."""
    model_gflop = flop_count.total_flops / 1e9 if flop_count is not None else None
    achieved = model_gflop / (latency.p50_ms / 1e3) if model_gflop is not None else None
    peak_kind, peak_value = peak_for_precision(peak, precision) if peak is not None else (None, None)
    fraction = achieved / peak_value if achieved is not None and peak_value else None
    by_op = dict(flop_count.by_op_type) if flop_count is not None else {}
    return Efficiency(model_gflop, by_op, achieved, peak, peak_kind, fraction)


def bench_model(
    path: str | Path,
    settings: SessionSettings,
    *,
    runs: int = 100,
    warmup: int = 10,
    repeats: int = 3,
    peak: bool = True,
    peak_size: int = 2048,
    progress: bool | None = None,
) -> BenchResult:
    """Time the model one image at a time: ``repeats`` × ``runs`` timed runs after ``warmup`` runs."""
    loaded = open_session(path, settings)
    info, notes = loaded.info, []
    flop_count = _unless_missing(lambda: count_flops(info.path), notes)
    image = np.random.default_rng(0).integers(0, 256, (*info.input_hw, 3), dtype=np.uint8)
    for _ in range(warmup):
        run_model(loaded, image)
    by_repeat = _timed_repeats(lambda: run_model(loaded, image), runs, repeats, progress)
    latency = median_stats(by_repeat)
    threads, fp16 = settings.intra_op_threads, info.precision == "fp16"
    peak_result = (
        _unless_missing(lambda: matmul_peak(loaded.providers_in_use, peak_size, 5, threads, fp16), notes)
        if peak
        else None
    )
    if flop_count is not None and flop_count.uncounted_nodes:
        notes.append(f"{len(flop_count.uncounted_nodes)} matrix/conv nodes have unknown shapes, not counted")
    model = {"path": str(info.path), "model_id": info.model_id, "encoder": info.encoder}
    model |= {"precision": info.precision, "input_hw": list(info.input_hw), "sha256": info.sha256}
    return BenchResult(
        model, tuple(settings.providers), loaded.providers_in_use, threads, runs, warmup, repeats,
        loaded.load_s, latency, tuple(by_repeat), 1e3 / latency.mean_ms,
        efficiency(flop_count, latency, peak_result, info.precision), tuple(notes), host_info(),
    )  # fmt: skip


def _unless_missing(compute: Callable[[], Any], notes: list[str]) -> Any:
    """``compute()``, or None with a note when an optional package it needs is absent."""
    try:
        return compute()
    except MissingDependencyError as exc:
        notes.append(f"{exc.message} (fix: {exc.fix})")
        return None


def _timed_repeats(
    run: Callable[[], Any], runs: int, repeats: int, progress: bool | None
) -> list[LatencyStats]:
    from tqdm import tqdm

    disable = None if progress is None else not progress  # None: a bar only on a terminal
    by_repeat = []
    with tqdm(total=runs * repeats, desc="bench-model", unit="run", disable=disable, leave=False) as bar:
        for _ in range(repeats):
            times_ms = []
            for _ in range(runs):
                start_ns = time.perf_counter_ns()
                run()
                times_ms.append((time.perf_counter_ns() - start_ns) / 1e6)
                bar.update(1)
            by_repeat.append(latency_stats(times_ms))
    return by_repeat


def host_info() -> dict[str, Any]:
    import onnxruntime as ort

    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "onnxruntime": ort.__version__,
        "python": platform.python_version(),
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def result_dict(result: BenchResult) -> dict[str, Any]:
    """The JSON document of a result (plain dicts, lists and numbers)."""
    return asdict(result)


def write_json_atomic(path: str | Path, document: dict[str, Any]) -> None:
    """Write to a temp file beside ``path``, fsync, rename over it: readers see old or new, never half."""
    path = Path(path)
    text = json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n"
    try:
        write_text_atomic(path, text)
    except OSError as exc:
        raise ConfigError(
            f"cannot write {path}: {exc.strerror}", fix="choose a writable path for --json"
        ) from None


def format_table(result: BenchResult) -> str:
    """The human summary of a ``BenchResult``, one quantity per line."""
    m, lat, eff = result.model, result.latency_ms, result.efficiency
    height, width = m["input_hw"]
    threads = result.intra_op_threads or "onnxruntime default"
    p50s = [stats.p50_ms for stats in result.latency_by_repeat]
    lines = [
        f"model        {m['model_id']} ({m['precision']}, {m['encoder']}, {height}x{width}) "
        f"sha256 {m['sha256'][:12]}",
        f"providers    {', '.join(result.providers_in_use)} (threads: {threads})",
        f"load         {result.load_s:.2f} s (session, contract check, warm-up)",
        f"latency ms   p50 {_ms(lat.p50_ms)}  p90 {_ms(lat.p90_ms)}  p99 {_ms(lat.p99_ms)}  "
        f"mean {_ms(lat.mean_ms)}  min {_ms(lat.min_ms)}  max {_ms(lat.max_ms)}",
        f"             median of {result.repeats} repeats x {result.runs} runs; "
        f"p50 per repeat {_ms(min(p50s))} to {_ms(max(p50s))}",
        f"throughput   {result.throughput_fps:.1f} images/s (one image at a time)",
    ]
    if eff.model_gflop is not None and eff.achieved_gflops is not None:
        gflop = eff.model_gflop
        per_image = f"{gflop:.3f} GFLOP" if gflop >= 0.1 else f"{gflop * 1e3:.3f} MFLOP"
        lines.append(f"compute      {per_image}/image -> {eff.achieved_gflops:.1f} GFLOP/s at p50")
    if eff.peak is not None:
        peak = eff.peak
        fp16 = f", fp16 {peak.fp16_gflops:.0f} GFLOP/s" if peak.fp16_gflops is not None else ""
        lines.append(
            f"peak         fp32 {peak.fp32_gflops:.0f} GFLOP/s, u8xs8 {peak.int8_gops:.0f} GOP/s{fp16} "
            f"({peak.size}x{peak.size} MatMul, best of {peak.runs}, {peak.providers_in_use[0]})"
        )
    if eff.fraction_of_peak is not None:
        lines.append(f"efficiency   {100 * eff.fraction_of_peak:.1f} % of the {eff.peak_kind} peak")
    lines.extend(f"note         {note}" for note in result.notes)
    return "\n".join(lines)


def _ms(value: float) -> str:
    return f"{value:.2f}" if value >= 1 else f"{value:.3f}"
