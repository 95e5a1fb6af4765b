"""`inp-export quantize`: an FP16 / INT8 artifact, written only if it passes the accuracy gate."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from edge.cli import Command, count_arg
from export.commands import add_results_argument, command_line, utc_now, write_results
from export.quantize import CALIBRATION_METHODS, PRECISIONS

GATE_REFUSED = 3  # exit status when the gate refuses (nothing written)

DESCRIPTION = """\
Build an FP16 or INT8 (static QDQ, calibrated on good images) artifact, evaluate it against the
FP32 one on a labelled set, and write it only if no image or pixel AUROC drops by more than
--max-drop points. Exit status 3 (and nothing written) when the gate refuses. The FP32 artifact is
checked against the contract first: a contract-breaking file is refused (exit 2) before any work."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True, help="FP32 artifact from `inp-export export`")
    parser.add_argument("--precision", choices=PRECISIONS, default="int8")
    parser.add_argument("--out", type=Path, required=True, help="where to write the quantized artifact")
    parser.add_argument(
        "--data-root", type=Path, help="labelled MVTec-layout set (default: the model's training root)"
    )
    parser.add_argument("--category", action="append", default=None, help="default: the model's categories")
    parser.add_argument("--calibration", choices=CALIBRATION_METHODS, default="minmax")
    parser.add_argument(
        "--calibration-images", type=count_arg(1), default=32, help="good images to calibrate on"
    )
    parser.add_argument("--per-tensor", action="store_true", help="per-tensor weights (default per-channel)")
    parser.add_argument(
        "--keep-float",
        action="append",
        default=[],
        metavar="PATTERN",
        help="node-name substring left in float",
    )
    parser.add_argument(
        "--quantize-all",
        action="store_true",
        help="quantize every network node, the encoder included (default for EfficientNet-Lite0: its "
        "encoder stays float, see docs/artifact.md)",
    )
    parser.add_argument(
        "--max-drop",
        type=float,
        default=0.5,
        help="largest allowed image/pixel AUROC drop, points (default 0.5)",
    )
    add_results_argument(parser, "--report")


def run(args: argparse.Namespace) -> int:
    from export.onnx_eval import artifact_dataset, open_artifact
    from export.quantize import QuantizeSettings, quantize_artifact

    loaded = open_artifact(args.model)  # contract-breaking: refused here, before any work
    meta = loaded.info.meta
    root, names = artifact_dataset(meta, args.model, args.data_root, args.category)
    settings = QuantizeSettings(
        precision=args.precision,
        calibration_method=args.calibration,
        per_channel=not args.per_tensor,
        calibration_count=args.calibration_images,
        exclude_name_patterns=() if args.quantize_all else (tuple(args.keep_float) or None),
        max_drop_points=args.max_drop,
    )
    outcome = quantize_artifact(loaded, args.out, root, names, settings)
    print_comparison(outcome)
    doc = {
        "command": command_line(),
        "created_utc": utc_now(),
        "model": {"artifact": str(args.model), "model_id": meta.model_id, "encoder": meta.encoder},
        "data": {"root": str(root), "categories": list(names)},
        "fp32": outcome.fp32_metrics,
        args.precision: outcome.quantized_metrics,
        "gate": dataclasses.asdict(outcome.gate),
        "settings": dataclasses.asdict(outcome.settings),  # as used, the encoder's defaults filled in
        "written": str(outcome.written) if outcome.written else None,
    }
    write_results(args.results, doc)
    if outcome.written is None:
        print(f"refused: {args.out} was not written")
        return GATE_REFUSED
    print(f"written: {outcome.written}")
    return 0


def print_comparison(outcome) -> None:
    rows = [("fp32", outcome.fp32_metrics["mean"]), ("quantized", outcome.quantized_metrics["mean"])]
    print(f"{'model':<10} {'I-AUROC':>8} {'P-AUROC':>8} {'AUPRO':>7}")
    for name, mean in rows:
        pixel = mean.get("pixel") or {}
        print(
            f"{name:<10} {100 * mean['image']['auroc']:8.2f} {100 * pixel.get('auroc', float('nan')):8.2f} "
            f"{100 * pixel.get('aupro', float('nan')):7.2f}"
        )
    print(outcome.gate.describe())


COMMAND = Command(
    name="quantize",
    help="FP16 / INT8 artifact behind an accuracy gate",
    description=DESCRIPTION,
    add_arguments=add_arguments,
    run=run,
)
