"""Score an exported ONNX artifact on an MVTec-layout test set with onnxruntime (any precision).

Used by the quantization gate and the parity checks: the model sees exactly what the device feeds it,
uint8 RGB at the artifact's input size, and its own anomaly map and score are what get measured.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from torch import Tensor

from edge.model import contract
from export.data import ImageTransform, MvtecDataset
from export.evaluate import ScoredSet, batches, masks_at_map_size, metrics_of
from export.report import mean_result


def open_cpu_session(path: Path, threads: int = 0) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def artifact_transform(meta: dict[str, str]) -> ImageTransform:
    """The resize / crop the artifact was trained with, from its metadata_props."""
    if contract.META_PREPROCESS not in meta:
        raise ValueError(
            f"model metadata has no {contract.META_PREPROCESS!r}; re-export it with `inp-export export`"
        )
    preprocess = json.loads(meta[contract.META_PREPROCESS])
    return ImageTransform(resize_px=int(preprocess["resize_px"]), crop_px=int(preprocess["crop_px"]))


def to_uint8_nhwc(image: Tensor) -> np.ndarray:
    """A [0, 1] float 3×H×W sample as the device's uint8 (1, H, W, 3) RGB frame."""
    return (image.permute(1, 2, 0).numpy() * 255.0).round().clip(0, 255).astype(np.uint8)[None]


def run_artifact(session: ort.InferenceSession, image: Tensor) -> tuple[np.ndarray, float]:
    anomaly_map, score = session.run(
        [contract.OUTPUT_ANOMALY_MAP, contract.OUTPUT_PRED_SCORE],
        {contract.INPUT_IMAGE: to_uint8_nhwc(image)},
    )
    return anomaly_map[0].astype(np.float32), float(score[0])


def score_with_artifact(session: ort.InferenceSession, dataset: MvtecDataset) -> ScoredSet:
    maps, scores, labels, masks = [], [], [], []
    for batch in batches(dataset, 8):
        for sample in batch:
            anomaly_map, score = run_artifact(session, sample.image)
            maps.append(anomaly_map)
            scores.append(score)
            labels.append(sample.label)
        masks.append(masks_at_map_size(batch, maps[-1].shape[-1]))
    return ScoredSet(np.stack(maps), np.array(scores), np.array(labels), np.concatenate(masks))


def evaluate_artifact(path: Path, root: Path, categories: Sequence[str]) -> dict:
    """Image and pixel metrics of an artifact, per category and mean."""
    session = open_cpu_session(path)
    transform = artifact_transform(session.get_modelmeta().custom_metadata_map)
    results = {
        name: metrics_of(score_with_artifact(session, MvtecDataset(root, name, "test", transform)))
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
