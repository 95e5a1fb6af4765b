"""`inp-export speed`: FP32 vs INT8 and pipeline vs bare network, or the given artifacts, timed in one run.

Both forms time their sessions with the same interleaved code (export/speed.py ``time_interleaved``)
and measure the matrix-multiply peak in the same run; speed.json and speed.md go to --out, and with
--results the JSON also goes where the docs keep their figures.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.atomic import write_text_atomic
from edge.cli import Command, count_arg
from edge.errors import ConfigError
from export.commands import add_results_argument, command_line, utc_now, write_json, write_results

SPEED_MODEL_CHOICES = ("effl0-256", "vits14-224", "vitb14-392")  # export.speed.SPEED_MODEL_NAMES
PEAK_SIZE = 2048

DESCRIPTION = """\
Time each model's FP32 artifact, INT8 artifact and bare network (encoder + INP head, no in-graph
pre/post-processing) interleaved in one run, with the machine's matrix-multiply peak measured in
the same run. Models: the EfficientNet-Lite0 INP-Former at 256 px, DINOv2-reg ViT-S/14 at 224 and
ViT-B/14 at 392 (random weights: speed only). Writes speed.json and speed.md.

With --artifact (repeatable) it times the given ONNX artifacts instead, the same way, and reports
each one's median and its speed-up against the first. Every artifact is checked against the
contract first: a contract-breaking file is refused (exit 2) before anything is timed or written."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("runs/speed"), help="models and speed.json/.md")
    what = parser.add_mutually_exclusive_group()
    what.add_argument(
        "--model",
        action="append",
        default=None,
        choices=SPEED_MODEL_CHOICES,
        help="which built-in model (default: all three); repeat to pick several",
    )
    what.add_argument(
        "--artifact",
        action="append",
        type=Path,
        default=None,
        help="time this ONNX artifact; repeat to compare",
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        help="trained EfficientNet-Lite0 checkpoint for effl0-256 (default: untrained head)",
    )
    parser.add_argument("--runs", type=count_arg(1), default=10, help="calls per timing block (default 10)")
    parser.add_argument(
        "--repeats", type=count_arg(1), default=5, help="timing blocks per model variant (default 5)"
    )
    parser.add_argument("--quiet", action="store_true")
    add_results_argument(parser)


def run_speed(
    out: Path,
    *,
    names: list[str] | None = None,
    checkpoint: Path | None = None,
    runs: int = 10,
    repeats: int = 5,
    progress: bool = True,
    peak_size: int = PEAK_SIZE,
    specs=None,
) -> tuple[dict, Path]:
    """Export, time and summarise the chosen models (``specs`` overrides the built-in table)."""
    from edge.model.flops import count_flops
    from edge.peak import matmul_peak
    from export.onnx_eval import open_artifact
    from export.speed import (
        SPEED_MODELS,
        build_speed_model,
        calibration_images,
        check_speed_checkpoint,
        cpu_session,
        export_variants,
        feed_for,
        summarise,
        time_interleaved,
    )

    chosen = list(specs or [spec for spec in SPEED_MODELS if not names or spec.name in names])
    if checkpoint is not None:
        check_speed_checkpoint(checkpoint, chosen)  # before any export
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for spec in chosen:
        model = build_speed_model(spec, checkpoint)
        paths = export_variants(spec, model, out, calibration_images(spec.input_px))
        sessions = {
            kind: cpu_session(path) if kind == "bare-fp32" else open_artifact(path).session
            for kind, path in paths.items()
        }
        feeds = {kind: feed_for(session, spec.input_px) for kind, session in sessions.items()}
        timing = time_interleaved(sessions, feeds, runs=runs, repeats=repeats, progress=progress)
        flops = {kind: count_flops(str(path)).total_flops for kind, path in paths.items()}
        results[spec.name] = {"spec": spec.__dict__, "timing": timing, "flops": flops}
    peak = matmul_peak(["cpu"], size=peak_size, runs=5)
    doc = {"command": command_line(), "created_utc": utc_now(), "peak": peak.__dict__, "models": results}
    doc.update(runs=runs, repeats=repeats, checkpoint=str(checkpoint) if checkpoint else None)
    doc["summary"] = summarise(doc)
    return doc, _write(out, doc, render_speed(doc))


def run_artifact_speed(
    paths: list[Path],
    out: Path,
    *,
    runs: int = 10,
    repeats: int = 5,
    progress: bool = True,
    peak_size: int = PEAK_SIZE,
) -> tuple[dict, Path]:
    """Time the given artifacts in one interleaved run; each is contract-checked before anything else."""
    from edge.model.contract import INPUT_IMAGE
    from edge.model.flops import count_flops
    from edge.peak import matmul_peak
    from export.onnx_eval import open_artifact
    from export.speed import calibration_images, summarise_artifacts, time_interleaved

    loaded = {_label(path, index): open_artifact(path) for index, path in enumerate(paths)}
    sessions = {label: model.session for label, model in loaded.items()}
    feeds = {
        label: {INPUT_IMAGE: calibration_images(m.info.input_hw[0], 1)[0]} for label, m in loaded.items()
    }
    timing = time_interleaved(sessions, feeds, runs=runs, repeats=repeats, progress=progress)
    flops = {label: count_flops(str(m.info.path)).total_flops for label, m in loaded.items()}
    peak = matmul_peak(["cpu"], size=peak_size, runs=5)
    artifacts = {
        label: {
            "path": str(m.info.path),
            "sha256": m.info.sha256,
            "model_id": m.info.model_id,
            "precision": m.info.precision,
            "input_hw": list(m.info.input_hw),
            "timing": timing[label],
            "flops": flops[label],
        }
        for label, m in loaded.items()
    }
    doc = {"command": command_line(), "created_utc": utc_now(), "peak": peak.__dict__, "artifacts": artifacts}
    doc.update(runs=runs, repeats=repeats, summary=summarise_artifacts(timing, flops))
    return doc, _write(Path(out), doc, render_artifact_speed(doc))


def _label(path: Path, index: int) -> str:
    return f"{index + 1}:{Path(path).name}"


def _write(out: Path, doc: dict, table: str) -> Path:
    write_text_atomic(out / "speed.md", table)
    return write_json(out / "speed.json", doc)


def _peak_line(peak: dict) -> str:
    return f"matmul peak in this run: fp32 {peak['fp32_gflops']:.0f} GFLOP/s, u8×s8 {peak['int8_gops']:.0f} GOP/s"


def render_speed(doc: dict) -> str:
    lines = [
        _peak_line(doc["peak"]),
        "",
        "| model | GFLOP/img | FP32 ms | INT8 ms | INT8 speed-up | bare FP32 ms | pre/post overhead | bare FP32 % of peak |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in doc["summary"].items():
        lines.append(
            f"| {name} | {row['gflop_per_image']:.2f} | {row['fp32_ms']:.1f} | {row['int8_ms']:.1f} | "
            f"{row['int8_speedup']:.2f}× | {row['bare_fp32_ms']:.1f} | {row['pipeline_overhead_pct']:+.1f} % | "
            f"{100 * row['bare_fp32_fraction_of_peak']:.0f} % |"
        )
    return "\n".join(lines) + "\n"


def render_artifact_speed(doc: dict) -> str:
    lines = [
        _peak_line(doc["peak"]),
        "",
        "| artifact | precision | GFLOP/img | median ms | speed-up vs first |",
    ]
    lines.append("|---|---|---|---|---|")
    for label, row in doc["summary"].items():
        gflop = "–" if row["gflop_per_image"] is None else f"{row['gflop_per_image']:.2f}"
        precision = doc["artifacts"][label]["precision"]
        lines.append(
            f"| {label} | {precision} | {gflop} | {row['median_ms']:.1f} | {row['speedup_vs_first']:.2f}× |"
        )
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    if args.artifact and args.checkpoint is not None:
        raise ConfigError(
            "--checkpoint applies to the built-in models, not to --artifact", fix="drop --checkpoint"
        )
    common = dict(runs=args.runs, repeats=args.repeats, progress=not args.quiet)
    if args.artifact:
        doc, json_path = run_artifact_speed(args.artifact, args.out, **common)
        table = render_artifact_speed(doc)
    else:
        doc, json_path = run_speed(args.out, names=args.model, checkpoint=args.checkpoint, **common)
        table = render_speed(doc)
    print(table)
    print(f"written: {json_path}")
    write_results(args.results, doc)
    return 0


COMMAND = Command(
    name="speed",
    help="FP32 vs INT8 and pipeline vs bare-network latency, or given artifacts, timed in one run",
    description=DESCRIPTION,
    add_arguments=add_arguments,
    run=run,
)
