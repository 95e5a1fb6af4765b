"""Score an exported ONNX artifact on an MVTec-layout test set with onnxruntime (any precision).

Used by the quantization gate and the parity checks: the model sees exactly what the device feeds it,
uint8 RGB at the artifact's input size, and its own anomaly map and score are what get measured.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from torch import Tensor

from edge.model import contract
from edge.model.contract import ModelMetadata
from edge.model.session import LoadedModel, SessionSettings, open_session, run_model
from export.data import ImageTransform, MvtecDataset
from export.evaluate import ScoredSet, batches, masks_at_map_size, metrics_of
from export.report import mean_result


def open_artifact(path: Path, threads: int = 0) -> LoadedModel:
    """Open a contract artifact on the CPU through edge's session code (refuses a broken one)."""
    settings = SessionSettings(providers=("cpu",), intra_op_threads=threads, warmup_runs=1)
    return open_session(path, settings)


def artifact_transform(meta: ModelMetadata) -> ImageTransform:
    """The resize / crop the artifact was trained with, from its typed metadata."""
    return ImageTransform(resize_px=meta.preprocess.resize_px, crop_px=meta.crop_px)


def to_uint8_nhwc(image: Tensor) -> np.ndarray:
    """A [0, 1] float 3×H×W sample as the device's uint8 (1, H, W, 3) RGB frame."""
    return (image.permute(1, 2, 0).numpy() * 255.0).round().clip(0, 255).astype(np.uint8)[None]


def run_artifact(loaded: LoadedModel, image: Tensor) -> tuple[np.ndarray, float]:
    outputs = run_model(loaded, to_uint8_nhwc(image))
    return outputs[contract.OUTPUT_ANOMALY_MAP][0].astype(np.float32), float(
        outputs[contract.OUTPUT_PRED_SCORE][0]
    )


def score_with_artifact(loaded: LoadedModel, dataset: MvtecDataset) -> ScoredSet:
    maps, scores, labels, masks = [], [], [], []
    for batch in batches(dataset, 8):
        for sample in batch:
            anomaly_map, score = run_artifact(loaded, sample.image)
            maps.append(anomaly_map)
            scores.append(score)
            labels.append(sample.label)
        masks.append(masks_at_map_size(batch, maps[-1].shape[-1]))
    return ScoredSet(np.stack(maps), np.array(scores), np.array(labels), np.concatenate(masks))


def evaluate_artifact(path: Path, root: Path, categories: Sequence[str]) -> dict:
    """Image and pixel metrics of an artifact, per category and mean."""
    loaded = open_artifact(path)
    transform = artifact_transform(loaded.info.meta)
    results = {
        name: metrics_of(score_with_artifact(loaded, MvtecDataset(root, name, "test", transform)))
        for name in categories
    }
    return {"categories": results, "mean": mean_result({n: {"m": r} for n, r in results.items()}, "m")}


def calibration_feeds(
    root: Path, categories: Sequence[str], transform: ImageTransform, count: int
) -> Iterator[dict[str, np.ndarray]]:
    """Good training images as model inputs, spread evenly over the categories."""
    per_category = max(1, count // max(1, len(categories)))
    for name in categories:
        train = MvtecDataset(root, name, "train", transform)
        step = max(1, len(train) // per_category)
        for index in range(0, len(train), step)[:per_category]:
            yield {contract.INPUT_IMAGE: to_uint8_nhwc(train[index].image)}
