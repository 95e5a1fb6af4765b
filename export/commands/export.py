"""`inp-export export`: a checkpoint → the self-describing ONNX artifact (contract 1)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.cli import Command

DESCRIPTION = """\
Write the ONNX artifact: uint8 (1, H, W, 3) RGB in; anomaly_map, pred_score, patch_features and
inp_distance out; normalisation, network, map post-processing and score inside the graph;
metadata (encoder, input size, pre-processing, training data, good-part score statistics)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
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


def run(args: argparse.Namespace) -> int:
    from export.artifact import export_checkpoint

    outcome = export_checkpoint(
        args.checkpoint,
        args.out,
        data_root=args.data_root,
        encoder_weights=args.encoder_weights,
        model_id=args.model_id,
    )
    stats = outcome.metadata.score_stats
    print(f"written: {outcome.path} (model id {outcome.metadata.model_id})")
    print(f"training good scores: n={stats.n} mean={stats.mean:.4f} p99={stats.p99:.4f}")
    return 0


COMMAND = Command(
    name="export",
    help="write the self-describing ONNX artifact",
    description=DESCRIPTION,
    add_arguments=add_arguments,
    run=run,
)
