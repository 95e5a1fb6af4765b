"""``inp-export``: train, evaluate, export and quantize INP-Former models (the torch side)."""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Sequence
from pathlib import Path

from export import cli_commands as commands

DESCRIPTION = """\
The model side of inp-edge. Typical flow:
  inp-export train     --data-root DIR --category NAME --out runs/NAME
  inp-export evaluate  --checkpoint runs/NAME/checkpoint.pt --out runs/NAME/eval
  inp-export export    --checkpoint runs/NAME/checkpoint.pt --out runs/NAME/model.onnx
  inp-export quantize  --model runs/NAME/model.onnx --precision int8 --out runs/NAME/model-int8.onnx
Every long step shows progress; every report is written as JSON and Markdown.
"""


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="YAML file whose keys are train options (flags win)")
    parser.add_argument("--data-root", type=Path, help="MVTec-layout root (<root>/<category>/train/good/*)")
    parser.add_argument(
        "--category",
        action="append",
        default=None,
        help="category to train on; repeat for one multi-class model (default: every category found)",
    )
    parser.add_argument(
        "--layout", choices=("mvtec", "folder"), help="'folder': --data-root holds good images"
    )
    parser.add_argument("--encoder", help="efficientnet_lite0 (default, offline) or dinov2_vit{s,b,l}14_reg4")
    parser.add_argument("--encoder-weights", type=Path, help="Meta's dinov2_*_reg4_pretrain.pth for DINOv2")
    parser.add_argument(
        "--few-shot", type=int, metavar="K", help="few-shot recipe: K good images per category"
    )
    parser.add_argument("--epochs", type=int, help="epochs (default 200, as in the paper)")
    parser.add_argument("--batch-size", type=int, help="default 16")
    parser.add_argument("--lr", type=float, help="peak learning rate (default 1e-3)")
    parser.add_argument("--warmup-steps", type=int, help="linear warm-up iterations (default 100)")
    parser.add_argument("--seed", type=int, help="default 1")
    parser.add_argument("--input-size", type=int, dest="crop_px", help="square input (centre crop), pixels")
    parser.add_argument("--resize", type=int, dest="resize_px", help="resize before the centre crop, pixels")
    parser.add_argument("--max-minutes", type=float, help="stop and save after this much wall time")
    parser.add_argument("--threads", type=int, dest="num_threads", help="torch threads (default: all CPUs)")
    parser.add_argument(
        "--no-feature-cache", action="store_true", help="encode every step (slow; for checks)"
    )
    parser.add_argument("--resume", type=Path, dest="resume_from", help="continue from this checkpoint")
    parser.add_argument("--out", type=Path, dest="out_dir", help="output folder (default runs/train)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint", type=Path, required=True, help="checkpoint.pt from `inp-export train`"
    )
    parser.add_argument("--data-root", type=Path, help="default: the training data root in the checkpoint")
    parser.add_argument("--category", action="append", default=None, help="default: the trained categories")
    parser.add_argument(
        "--map",
        choices=("reconstruction", "inp-distance"),
        default="reconstruction",
        help="reconstruction residual (default) or the zero-shot INP coherence distance",
    )
    parser.add_argument("--no-knn", action="store_true", help="skip the kNN baseline")
    parser.add_argument("--encoder-weights", type=Path, help="needed for DINOv2 checkpoints")
    parser.add_argument(
        "--out", type=Path, default=None, help="report folder (default: <checkpoint dir>/eval)"
    )


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint", type=Path, required=True, help="checkpoint.pt from `inp-export train`"
    )
    parser.add_argument("--out", type=Path, required=True, help="the .onnx artifact to write")
    parser.add_argument(
        "--data-root", type=Path, help="training data for the score statistics (default: recorded)"
    )
    parser.add_argument("--encoder-weights", type=Path, help="needed for DINOv2 checkpoints")
    parser.add_argument(
        "--model-id", help="short id stored in the artifact (default: categories-encoder-date)"
    )


def _quantize_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True, help="FP32 artifact from `inp-export export`")
    parser.add_argument("--precision", choices=("int8", "fp16"), default="int8")
    parser.add_argument("--out", type=Path, required=True, help="where to write the quantized artifact")
    parser.add_argument(
        "--data-root", type=Path, help="labelled MVTec-layout set (default: the model's training root)"
    )
    parser.add_argument("--category", action="append", default=None, help="default: the model's categories")
    parser.add_argument("--calibration", choices=("minmax", "entropy", "percentile"), default="minmax")
    parser.add_argument("--calibration-images", type=int, default=32, help="good images to calibrate on")
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
    parser.add_argument("--report", type=Path, help="also write the comparison as JSON here")


def _benchmark_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--datasets", type=Path, default=Path("../shared/datasets"), help="MVTec-layout sets")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmark"), help="models and reports")
    parser.add_argument("--epochs", type=int, default=None, help="override the per-set epochs of the plan")
    parser.add_argument("--only", action="append", default=None, help="run only these plan entries")
    parser.add_argument("--quiet", action="store_true")


def _speed_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("runs/speed"), help="models and speed.json/.md")
    parser.add_argument(
        "--model",
        action="append",
        default=None,
        help="effl0-256, vits14-224, vitb14-392 (default: all three); repeat to pick several",
    )
    parser.add_argument(
        "--checkpoint", type=Path, help="trained EfficientNet-Lite0 checkpoint (default: untrained head)"
    )
    parser.add_argument("--runs", type=int, default=10, help="calls per timing block (default 10)")
    parser.add_argument("--repeats", type=int, default=5, help="timing blocks per model variant (default 5)")
    parser.add_argument("--quiet", action="store_true")


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="where everything is written")
    parser.add_argument("--epochs", type=int, default=40, help="training epochs on the drawn parts")


SUBCOMMANDS = (
    ("train", "train an INP-Former (single-, multi-class or few-shot)", _train_arguments, commands.train),
    ("evaluate", "image / pixel metrics with a kNN baseline", _evaluate_arguments, commands.evaluate),
    ("export", "write the self-describing ONNX artifact", _export_arguments, commands.export),
    ("quantize", "FP16 / INT8 artifact behind an accuracy gate", _quantize_arguments, commands.quantize),
    (
        "benchmark",
        "quality benchmark on the shared real image sets",
        _benchmark_arguments,
        commands.benchmark,
    ),
    ("speed", "FP32 vs INT8 and pipeline vs bare-network latency", _speed_arguments, commands.speed),
    ("demo", "draw parts, train, evaluate, export, quantize, bench", _demo_arguments, commands.demo),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inp-export", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text, add_arguments, run in SUBCOMMANDS:
        doc = inspect.cleandoc(run.__doc__ or help_text)
        child = sub.add_parser(
            name, help=help_text, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        add_arguments(child)
        child.set_defaults(run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except commands.USER_ERRORS as exc:
        print(f"inp-export {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"inp-export {args.command}: interrupted", file=sys.stderr)
        return 130


__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
