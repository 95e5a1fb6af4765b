"""The work behind each `inp-export` command, callable from Python as well as the CLI."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from edge.model.contract import ModelMetadata, ScoreStats, TrainingData
from export.checkpoint import load_model
from export.data import FolderDataset, ImageTransform, MvtecDataset
from export.evaluate import EvalSettings, evaluate
from export.model.postprocess import MapSettings
from export.onnx_eval import to_uint8_nhwc
from export.onnx_export import ExportGraph, export_onnx, preprocess_record
from export.report import write_report


def command_line() -> str:
    return " ".join(["inp-export", *sys.argv[1:]]) if sys.argv else "inp-export"


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def checkpoint_dataset(meta: dict, data_root: Path | None, categories: tuple[str, ...]) -> tuple[Path, tuple]:
    """The data root and categories to use: the flags, else what the checkpoint was trained on."""
    trained = meta.get("training_data", {})
    root = Path(data_root) if data_root else Path(meta["train_config"]["data_root"])
    names = tuple(categories) or tuple(trained.get("categories", ()))
    if not names:
        raise ValueError("no categories given and none recorded in the checkpoint; pass --category NAME")
    return root, names


def transform_of(meta: dict) -> ImageTransform:
    return ImageTransform(
        resize_px=int(meta["transform"]["resize_px"]), crop_px=int(meta["transform"]["crop_px"])
    )


def evaluate_job(
    checkpoint: Path,
    out_dir: Path,
    *,
    data_root: Path | None = None,
    categories: tuple[str, ...] = (),
    settings: EvalSettings | None = None,
    encoder_weights: Path | None = None,
    extra_model_info: dict | None = None,
) -> tuple[dict, Path, Path]:
    settings = settings or EvalSettings()
    loaded = load_model(checkpoint, encoder_weights=encoder_weights)
    root, names = checkpoint_dataset(loaded.meta, data_root, categories)
    shots = loaded.meta.get("training_data", {}).get("files")
    if shots and settings.knn_train_files is None:
        settings = replace(settings, knn_train_files=tuple(shots))
    started = time.monotonic()
    body = evaluate(loaded.model, root, names, transform_of(loaded.meta), settings)
    report = {
        "command": command_line(),
        "created_utc": utc_now(),
        "model": {
            "checkpoint": str(checkpoint),
            "encoder": loaded.meta["encoder"]["name"],
            "input_size_px": loaded.meta["transform"]["crop_px"],
            "map_kind": settings.map_kind,
            **(extra_model_info or {}),
        },
        "categories": body["categories"],
        "mean": body["mean"],
        "timing_s": {"evaluate": round(time.monotonic() - started, 2)},
    }
    json_path, md_path = write_report(report, out_dir, "evaluation")
    return report, json_path, md_path


IN_SAMPLE = "training good images (in-sample: expect held-out good parts to score a little higher)"


def score_statistics(scores: np.ndarray, source: str = IN_SAMPLE) -> ScoreStats:
    """Raw-score statistics of good parts: the starting point for thresholds on the device."""
    p50, p90, p95, p99 = (float(np.percentile(scores, q)) for q in (50, 90, 95, 99))
    return ScoreStats(
        n=int(scores.size),
        mean=float(scores.mean()),
        std=float(scores.std()),
        min=float(scores.min()),
        max=float(scores.max()),
        p50=p50,
        p90=p90,
        p95=p95,
        p99=p99,
        source=source,
    )


def training_record(summary: dict) -> TrainingData:
    """The checkpoint's training summary as contract 1's typed record."""
    return TrainingData(
        layout=summary["layout"],
        data_root=summary["data_root"],
        categories=tuple(summary["categories"]),
        images_per_category=dict(summary["images_per_category"]),
        num_images=int(summary["num_images"]),
        mode=summary["mode"],
        shots=summary.get("shots"),
        views_per_image=int(summary.get("views_per_image", 1)),
        num_items=int(summary.get("num_items", summary["num_images"])),
        files=tuple(summary["files"]) if summary.get("files") else None,
        fingerprint=summary.get("fingerprint", ""),
    )


@torch.no_grad()
def training_scores(graph: ExportGraph, good_sets: list) -> np.ndarray:
    """pred_score of the export graph itself on the training good images, fed as the device feeds it."""
    scores = []
    for dataset in good_sets:
        for index in range(len(dataset)):
            image = torch.from_numpy(to_uint8_nhwc(dataset[index].image))
            scores.append(float(graph(image)[1][0]))
    return np.array(scores, dtype=np.float64)


def good_training_sets(meta: dict, root: Path, names: tuple, transform: ImageTransform) -> list:
    if meta.get("train_config", {}).get("layout") == "folder":
        return [FolderDataset(root, transform)]
    return [MvtecDataset(root, name, "train", transform) for name in names]


@dataclass(frozen=True)
class ExportOutcome:
    path: Path
    metadata: ModelMetadata


def export_job(
    checkpoint: Path,
    out_path: Path,
    *,
    data_root: Path | None = None,
    encoder_weights: Path | None = None,
    model_id: str | None = None,
) -> ExportOutcome:
    loaded = load_model(checkpoint, encoder_weights=encoder_weights)
    meta = loaded.meta
    transform = transform_of(meta)
    root, names = checkpoint_dataset(meta, data_root, ())
    input_hw = (transform.crop_px, transform.crop_px)
    map_settings = MapSettings()
    graph = ExportGraph(loaded.model, input_hw, map_settings).eval()
    scores = training_scores(graph, good_training_sets(meta, root, names, transform))
    encoder = meta["encoder"]["name"]
    metadata = ModelMetadata(
        input_hw=input_hw,
        encoder=encoder,
        precision="fp32",
        model_id=model_id or f"{'+'.join(names)}-{encoder}-{time.strftime('%Y%m%d')}",
        preprocess=preprocess_record(transform.resize_px, map_settings),
        score_stats=score_statistics(scores),
        training_data=training_record(meta["training_data"]),
    )
    return ExportOutcome(export_onnx(loaded.model, metadata, out_path), metadata)
