"""From a trained checkpoint to contract 1's artifact: good-part score statistics, metadata, export.

The score statistics are the export graph's own ``pred_score`` on the good images the model was
trained on (every train/good image, or only the few-shot shots a checkpoint records), fed as the
device feeds them (uint8 RGB at the input size), so the device's first thresholds start from what it
will actually compute. ``ScoreStats.source`` says which images those were.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edge.model.contract import ModelMetadata, ScoreStats, TrainingData
from export.checkpoint import CheckpointMeta, load_model
from export.data import FolderDataset, ImageTransform, MvtecDataset, recorded_images
from export.model.postprocess import MapSettings
from export.onnx_eval import to_uint8_nhwc
from export.onnx_export import ExportGraph, export_onnx, preprocess_record

IN_SAMPLE = "training good images (in-sample: expect held-out good parts to score a little higher)"
NOT_RECORDED = (
    "train/good images of the categories under the data root; the checkpoint does not record which "
    "images it was trained on (e.g. an official release), so they may be held-out parts or in-sample"
)
SHOTS_FIX = "export with --data-root pointing at the data the model was trained on"


def score_source(data: TrainingData) -> str:
    """What the good-part statistics were computed on, honestly (``ScoreStats.source``)."""
    if data.num_images == 0:
        return NOT_RECORDED
    if data.files is not None:
        return (
            f"the {len(data.files)} few-shot training image(s) themselves, without their augmented views "
            "(in-sample: expect held-out good parts to score higher)"
        )
    return IN_SAMPLE


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


@torch.no_grad()
def training_scores(graph: ExportGraph, good_sets: list) -> np.ndarray:
    """pred_score of the export graph itself on the training good images, fed as the device feeds it."""
    scores = []
    for dataset in good_sets:
        for index in range(len(dataset)):
            image = torch.from_numpy(to_uint8_nhwc(dataset[index].image))
            scores.append(float(graph(image)[1][0]))
    return np.array(scores, dtype=np.float64)


def good_training_sets(meta: CheckpointMeta, root: Path, names: tuple, transform: ImageTransform) -> list:
    """The good images a checkpoint was trained on, under ``root`` (listed, not read yet): every
    train/good image of its categories, or only the recorded few-shot shots."""
    if meta.training_data.layout == "folder":
        sets = [FolderDataset(root, transform)]
    else:
        sets = [MvtecDataset(root, name, "train", transform) for name in names]
    files = meta.training_data.files
    return [recorded_images(dataset, root, files, fix=SHOTS_FIX) for dataset in sets]


@dataclass(frozen=True)
class ExportOutcome:
    path: Path
    metadata: ModelMetadata


def export_checkpoint(
    checkpoint: Path,
    out_path: Path,
    *,
    data_root: Path | None = None,
    encoder_weights: Path | None = None,
    model_id: str | None = None,
) -> ExportOutcome:
    """Rebuild the checkpoint's model, score its training good parts, and write the ONNX artifact."""
    loaded = load_model(checkpoint, encoder_weights=encoder_weights)
    meta = loaded.meta
    transform = meta.transform
    root, names = meta.dataset(data_root)
    good_sets = good_training_sets(meta, root, names, transform)  # missing images: refused here
    input_hw = (transform.crop_px, transform.crop_px)
    map_settings = MapSettings()
    graph = ExportGraph(loaded.model, input_hw, map_settings).eval()
    scores = training_scores(graph, good_sets)
    encoder = meta.encoder.name
    metadata = ModelMetadata(
        input_hw=input_hw,
        encoder=encoder,
        precision="fp32",
        model_id=model_id or f"{'+'.join(names)}-{encoder}-{time.strftime('%Y%m%d')}",
        preprocess=preprocess_record(transform.resize_px, map_settings),
        score_stats=score_statistics(scores, score_source(meta.training_data)),
        training_data=meta.training_data,
    )
    return ExportOutcome(export_onnx(loaded.model, metadata, out_path), metadata)
