"""Evaluate a trained INP-Former on MVTec-layout test sets, with a kNN baseline measured beside it.

For each category: the model's anomaly maps and image scores (INP_FORMER.md §8, or the zero-shot
coherence-distance map), image AUROC / AP / F1-max, pixel AUROC / AP / F1-max / AUPRO, and the same
figures for a PatchCore-style nearest-neighbour baseline on the same encoder tokens and inputs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset
from tqdm import tqdm

from export.data import ImageTransform, MvtecDataset, Sample, recorded_images
from export.knn import KnnBaseline, KnnSettings
from export.metrics import image_metrics, pixel_metrics
from export.model.inp_former import INPFormer
from export.model.loss import coherence_distance
from export.model.postprocess import MapSettings, anomaly_map, image_score, token_map
from export.report import METHODS, mean_result

MAP_KINDS = ("reconstruction", "inp-distance")


@dataclass(frozen=True)
class EvalSettings:
    map_kind: str = "reconstruction"  # or "inp-distance" (zero-shot, INP_FORMER.md §7)
    batch_size: int = 8
    knn_baseline: bool = True
    knn_coreset_ratio: float = 0.1
    map_settings: MapSettings = MapSettings()
    progress: bool = True
    # Few-shot models: the kNN baseline's memory holds only these training files (paths relative to
    # the data root, as the checkpoint records them), so both methods see the same good images.
    knn_train_files: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ScoredSet:
    """Maps (N×S×S), image scores (N), labels (N) and GT masks (N×S×S bool) of one test set."""

    maps: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    masks: np.ndarray


def batches(samples: Sequence[Sample] | Dataset, batch_size: int) -> Iterator[list[Sample]]:
    batch: list[Sample] = []
    for index in range(len(samples)):
        batch.append(samples[index])
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def stack_images(batch: list[Sample]) -> Tensor:
    return torch.stack([sample.image for sample in batch])


def masks_at_map_size(batch: list[Sample], size_px: int) -> np.ndarray:
    """GT masks resized with nearest neighbour to the map size, binarised at 0.5 (INP_FORMER.md §8)."""
    out = []
    for sample in batch:
        height, width = sample.image.shape[-2:]
        mask = sample.mask if sample.mask is not None else torch.zeros((height, width), dtype=torch.bool)
        resized = F.interpolate(mask[None, None].float(), size=(size_px, size_px), mode="nearest")[0, 0]
        out.append((resized > 0.5).numpy())
    return np.stack(out)


@torch.no_grad()
def model_maps(model: INPFormer, images: Tensor, settings: EvalSettings) -> Tensor:
    rec = model(images)
    input_hw = (images.shape[-2], images.shape[-1])
    if settings.map_kind == "inp-distance":
        distance = coherence_distance(rec.fused, rec.inps)
        return token_map(distance, rec.grid_hw, input_hw, settings.map_settings)
    return anomaly_map(rec.encoder_groups, rec.decoder_groups, rec.grid_hw, input_hw, settings.map_settings)


def knn_memory_images(
    root: Path, category: str, transform: ImageTransform, settings: EvalSettings
) -> Dataset:
    """The category's good training images, or only the recorded few-shot files among them."""
    train = MvtecDataset(root, category, "train", transform)
    fix = "evaluate on the data root the model was trained on (--data-root), or pass --no-knn"
    return recorded_images(train, root, settings.knn_train_files, fix=fix)


def fit_knn(model: INPFormer, train: Dataset, settings: EvalSettings) -> KnnBaseline:
    with torch.no_grad():
        tokens = [model.encoder(stack_images(b)).fused for b in batches(train, settings.batch_size)]
    return KnnBaseline(KnnSettings(coreset_ratio=settings.knn_coreset_ratio)).fit(torch.cat(tokens))


@torch.no_grad()
def knn_maps(model: INPFormer, knn: KnnBaseline, images: Tensor, settings: EvalSettings) -> Tensor:
    features = model.encoder(images)
    distances = knn.score(features.fused)
    return token_map(distances, features.grid_hw, (images.shape[-2], images.shape[-1]), settings.map_settings)


def score_test_set(test: MvtecDataset, map_fn, settings: EvalSettings, label: str) -> ScoredSet:
    maps, scores, labels, masks = [], [], [], []
    size_px = settings.map_settings.map_size_px
    for batch in tqdm(
        list(batches(test, settings.batch_size)),
        desc=label,
        unit="batch",
        leave=False,
        disable=not settings.progress,
    ):
        batch_maps = map_fn(stack_images(batch))
        maps.append(batch_maps.numpy())
        scores.append(image_score(batch_maps, settings.map_settings.top_ratio).numpy())
        labels.append(np.array([sample.label for sample in batch]))
        masks.append(masks_at_map_size(batch, size_px))
    return ScoredSet(*(np.concatenate(parts) for parts in (maps, scores, labels, masks)))


def metrics_of(scored: ScoredSet) -> dict:
    return {
        "image": image_metrics(scored.scores, scored.labels).as_dict(),
        "pixel": pixel_metrics(scored.maps, scored.masks).as_dict(),
    }


def evaluate_category(
    model: INPFormer, root: Path, category: str, transform: ImageTransform, settings: EvalSettings
) -> dict:
    model.eval()
    test = MvtecDataset(root, category, "test", transform)
    started = time.monotonic()
    scored = score_test_set(test, lambda images: model_maps(model, images, settings), settings, category)
    result = {
        "n_good": int((scored.labels == 0).sum()),
        "n_defect": int((scored.labels == 1).sum()),
        "inp_former": metrics_of(scored),
        "knn": None,
        "seconds": {"inp_former": round(time.monotonic() - started, 2)},
    }
    if settings.knn_baseline:
        started = time.monotonic()
        knn = fit_knn(model, knn_memory_images(root, category, transform, settings), settings)
        knn_scored = score_test_set(
            test, lambda images: knn_maps(model, knn, images, settings), settings, f"{category} kNN"
        )
        result["knn"] = metrics_of(knn_scored)
        result["seconds"]["knn"] = round(time.monotonic() - started, 2)
    return result


def evaluate(
    model: INPFormer, root: Path, categories: Sequence[str], transform: ImageTransform, settings: EvalSettings
) -> dict:
    """Evaluate every category; returns the report body (categories + mean)."""
    if settings.map_kind not in MAP_KINDS:
        raise ValueError(f"map kind {settings.map_kind!r} is not one of {MAP_KINDS}")
    per_category = {name: evaluate_category(model, root, name, transform, settings) for name in categories}
    mean = {method: mean_result(per_category, method) for method in METHODS}
    return {"categories": per_category, "mean": mean, "map_kind": settings.map_kind}
