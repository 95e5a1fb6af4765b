"""Score an exported ONNX artifact on an MVTec-layout test set with onnxruntime (any precision).

Used by `inp-export evaluate --model`, the quantization gate and the parity checks: the model sees
exactly what the device feeds it, uint8 RGB at the artifact's input size, and its own anomaly map and
score are what get measured. Artifacts are opened through edge's session code, so a contract-breaking
file is refused (``ModelLoadError`` / ``ModelContractError``) before any image is read.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from torch import Tensor

from edge.errors import DataError
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


def artifact_dataset(
    meta: ModelMetadata, path: Path, data_root: Path | None, categories: Sequence[str] | None
) -> tuple[Path, tuple[str, ...]]:
    """The labelled set to score: the one given, else the data the artifact records it was trained on."""
    recorded = meta.training_data
    root = data_root or (Path(recorded.data_root) if recorded.data_root else None)
    names = tuple(categories or recorded.categories)
    if root is None or not names:
        raise DataError(
            f"model {path} records no labelled set (training data root {recorded.data_root!r}, "
            f"categories {list(recorded.categories)})",
            fix="pass --data-root DIR and --category NAME",
        )
    return Path(root), names


def check_test_sets(root: Path, categories: Sequence[str], transform: ImageTransform) -> None:
    """List every category's test images and masks now (cheap), so a missing one stops before any work."""
    for name in categories:
        MvtecDataset(root, name, "test", transform)


def to_uint8_nhwc(image: Tensor) -> np.ndarray:
    """A [0, 1] float 3×H×W sample as the device's uint8 (1, H, W, 3) RGB frame."""
    return (image.permute(1, 2, 0).numpy() * 255.0).round().clip(0, 255).astype(np.uint8)[None]


def run_artifact(loaded: LoadedModel, image_u8: np.ndarray) -> tuple[np.ndarray, float]:
    """The anomaly map and the score of one device frame (uint8 (1, H, W, 3))."""
    outputs = run_model(loaded, image_u8)
    return outputs[contract.OUTPUT_ANOMALY_MAP][0].astype(np.float32), float(
        outputs[contract.OUTPUT_PRED_SCORE][0]
    )


def score_with_artifacts(models: Sequence[LoadedModel], dataset: MvtecDataset) -> list[ScoredSet]:
    """Every model's maps and scores on one test set, each image read and converted once for all."""
    maps: list[list[np.ndarray]] = [[] for _ in models]
    scores: list[list[float]] = [[] for _ in models]
    masks: list[list[np.ndarray]] = [[] for _ in models]
    labels = []
    for batch in batches(dataset, 8):
        for sample in batch:
            image_u8 = to_uint8_nhwc(sample.image)
            for index, loaded in enumerate(models):
                anomaly_map, score = run_artifact(loaded, image_u8)
                maps[index].append(anomaly_map)
                scores[index].append(score)
            labels.append(sample.label)
        for index in range(len(models)):
            masks[index].append(masks_at_map_size(batch, maps[index][-1].shape[-1]))
    return [
        ScoredSet(np.stack(maps[i]), np.array(scores[i]), np.array(labels), np.concatenate(masks[i]))
        for i in range(len(models))
    ]


def score_categories(
    models: Sequence[LoadedModel], root: Path, categories: Sequence[str]
) -> dict[str, list[ScoredSet]]:
    """Each model's maps and scores on each category's test set (at the first model's pre-processing)."""
    transform = artifact_transform(models[0].info.meta)
    others = [m.info.path for m in models[1:] if artifact_transform(m.info.meta) != transform]
    if others:  # a bug in the caller: models scored together must share the input pre-processing
        raise ValueError(f"{others} need other pre-processing than {models[0].info.path} ({transform})")
    return {
        name: score_with_artifacts(models, MvtecDataset(root, name, "test", transform)) for name in categories
    }


def evaluate_artifacts(models: Sequence[LoadedModel], root: Path, categories: Sequence[str]) -> list[dict]:
    """Image and pixel metrics of each artifact, per category and mean, from one pass over the data."""
    scored = score_categories(models, root, categories)
    results = []
    for index in range(len(models)):
        per_category = {name: metrics_of(sets[index]) for name, sets in scored.items()}
        mean = mean_result({name: {"m": result} for name, result in per_category.items()}, "m")
        results.append({"categories": per_category, "mean": mean})
    return results


def evaluate_artifact(path: Path | LoadedModel, root: Path, categories: Sequence[str]) -> dict:
    """Image and pixel metrics of an artifact, per category and mean."""
    loaded = path if isinstance(path, LoadedModel) else open_artifact(path)
    return evaluate_artifacts([loaded], root, categories)[0]


def artifact_report_body(loaded: LoadedModel, root: Path, categories: Sequence[str]) -> dict:
    """The categories and mean of an evaluation report (export/report.py) for an artifact (no kNN)."""
    per_category = {
        name: {
            "n_good": int((scored.labels == 0).sum()),
            "n_defect": int((scored.labels == 1).sum()),
            "inp_former": metrics_of(scored),
            "knn": None,
        }
        for name, (scored,) in score_categories([loaded], root, categories).items()
    }
    mean = {method: mean_result(per_category, method) for method in ("inp_former", "knn")}
    return {"categories": per_category, "mean": mean}


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
