"""`inp-export evaluate`: metrics of a checkpoint (torch, beside a kNN baseline) or of an ONNX artifact.

Either way the result is export/report.py's report: evaluation.json and evaluation.md in --out,
and, with --results, the JSON copied where the docs keep their figures.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from edge.cli import Command
from edge.errors import ConfigError
from export.commands import add_results_argument, command_line, utc_now, write_results

if TYPE_CHECKING:
    from export.evaluate import EvalSettings

MAP_CHOICES = ("reconstruction", "inp-distance")

DESCRIPTION = """\
Image AUROC / AP / F1-max and pixel AUROC / AP / F1-max / AUPRO (FPR up to 0.3), per category
and mean. Give exactly one model:
  --checkpoint  the torch model from `inp-export train`, measured beside a PatchCore-style kNN
                baseline on the same encoder and inputs (--no-knn skips it);
  --model       an ONNX artifact from `inp-export export` / `quantize`, run by onnxruntime (CPU)
                exactly as the device feeds it. It is checked against the artifact contract
                first; a contract-breaking file is refused (exit 2) before any image is read.
The labelled set defaults to the one the model records it was trained on. Writes
evaluation.json and evaluation.md."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", type=Path, help="checkpoint.pt from `inp-export train`")
    model.add_argument("--model", type=Path, help="ONNX artifact (any precision) from `inp-export export`")
    parser.add_argument("--data-root", type=Path, help="default: the training data root the model records")
    parser.add_argument("--category", action="append", default=None, help="default: the trained categories")
    parser.add_argument(
        "--map",
        choices=MAP_CHOICES,
        default="reconstruction",
        help="reconstruction residual (default) or the zero-shot INP coherence distance (--checkpoint only)",
    )
    parser.add_argument("--no-knn", action="store_true", help="skip the kNN baseline (--checkpoint only)")
    parser.add_argument("--encoder-weights", type=Path, help="needed for DINOv2 checkpoints")
    parser.add_argument(
        "--out", type=Path, default=None, help="report folder (default: eval/ beside the model)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_results_argument(parser)


def evaluate_job(
    checkpoint: Path,
    out_dir: Path,
    *,
    data_root: Path | None = None,
    categories: tuple[str, ...] = (),
    settings: EvalSettings | None = None,
    encoder_weights: Path | None = None,
) -> tuple[dict, Path, Path]:
    """Evaluate a checkpoint (kNN baseline beside it) and write the report; returns it and its paths."""
    from export.checkpoint import load_model
    from export.evaluate import EvalSettings, evaluate
    from export.onnx_eval import check_test_sets

    settings = settings or EvalSettings()
    loaded = load_model(checkpoint, encoder_weights=encoder_weights)
    meta = loaded.meta
    root, names = meta.dataset(data_root, categories)
    check_test_sets(root, names, meta.transform)
    shots = meta.training_data.files
    if shots and settings.knn_train_files is None:
        settings = replace(settings, knn_train_files=tuple(shots))
    started = time.monotonic()
    body = evaluate(loaded.model, root, names, meta.transform, settings)
    model = {
        "checkpoint": str(checkpoint),
        "encoder": meta.encoder.name,
        "input_size_px": meta.transform.crop_px,
        "map_kind": settings.map_kind,
    }
    return _write(model, body, out_dir, started)


def evaluate_artifact_job(
    model_path: Path, out_dir: Path, *, data_root: Path | None = None, categories: tuple[str, ...] = ()
) -> tuple[dict, Path, Path]:
    """Evaluate an ONNX artifact with onnxruntime and write the report (no kNN baseline)."""
    from export.onnx_eval import (
        artifact_dataset,
        artifact_report_body,
        artifact_transform,
        check_test_sets,
        open_artifact,
    )

    loaded = open_artifact(Path(model_path))  # contract-breaking: refused here, before any work
    meta = loaded.info.meta
    root, names = artifact_dataset(meta, model_path, data_root, categories)
    check_test_sets(root, names, artifact_transform(meta))
    started = time.monotonic()
    body = artifact_report_body(loaded, root, names)
    model = {
        "artifact": str(model_path),
        "model_id": meta.model_id,
        "encoder": meta.encoder,
        "precision": meta.precision,
        "input_size_px": meta.crop_px,
        "sha256": loaded.info.sha256,
        "runtime": "onnxruntime " + ", ".join(loaded.providers_in_use),
        "map_kind": "reconstruction",
    }
    return _write(model, body, out_dir, started)


def _write(model: dict, body: dict, out_dir: Path, started: float) -> tuple[dict, Path, Path]:
    from export.report import write_report

    report = {
        "command": command_line(),
        "created_utc": utc_now(),
        "model": model,
        "categories": body["categories"],
        "mean": body["mean"],
        "timing_s": {"evaluate": round(time.monotonic() - started, 2)},
    }
    json_path, md_path = write_report(report, out_dir, "evaluation")
    return report, json_path, md_path


def run(args: argparse.Namespace) -> int:
    from export.evaluate import EvalSettings

    categories = tuple(args.category or ())
    if args.model is not None:
        _refuse_checkpoint_options(args)
        out_dir = args.out or Path(args.model).parent / f"eval-{Path(args.model).stem}"
        report, json_path, md_path = evaluate_artifact_job(
            args.model, out_dir, data_root=args.data_root, categories=categories
        )
    else:
        settings = EvalSettings(map_kind=args.map, knn_baseline=not args.no_knn, progress=not args.quiet)
        out_dir = args.out or Path(args.checkpoint).parent / "eval"
        report, json_path, md_path = evaluate_job(
            args.checkpoint,
            out_dir,
            data_root=args.data_root,
            categories=categories,
            settings=settings,
            encoder_weights=args.encoder_weights,
        )
    print(Path(md_path).read_text())
    print(f"written: {json_path} and {md_path}")
    write_results(args.results, report)
    return 0


def _refuse_checkpoint_options(args: argparse.Namespace) -> None:
    given = [
        flag
        for flag, value in (
            ("--map", args.map != "reconstruction"),
            ("--no-knn", args.no_knn),
            ("--encoder-weights", args.encoder_weights),
        )
        if value
    ]
    if given:
        raise ConfigError(
            f"{', '.join(given)} apply to --checkpoint only; an ONNX artifact is scored by its own "
            "anomaly_map and pred_score, with no kNN baseline",
            fix=f"drop {', '.join(given)}, or evaluate the checkpoint instead",
        )


COMMAND = Command(
    name="evaluate",
    help="image / pixel metrics of a checkpoint (with a kNN baseline) or an ONNX artifact",
    description=DESCRIPTION,
    add_arguments=add_arguments,
    run=run,
)
