"""What a training step reads: the training images, and the frozen encoder's cached features.

The encoder is frozen and the images of a recipe are fixed (few-shot views included), so the
features are computed once (``FeatureCache``); ``LiveEncoding`` runs the encoder every step
instead (same results, much slower on CPU).
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import Tensor
from torch.utils.data import ConcatDataset, Dataset
from tqdm import tqdm

from edge.errors import DataError
from edge.model.contract import TrainingData
from export.augment import NUM_VIEWS, ShotViews
from export.data import (
    FolderDataset,
    ImageTransform,
    MvtecDataset,
    entries_of,
    few_shot_subset,
    list_categories,
    relative_name,
)
from export.model.base import EncodedFeatures, FrozenEncoder, Reconstruction

if TYPE_CHECKING:
    from export.model.inp_former import INPFormer
    from export.train import TrainConfig


class ImageSet(Protocol):
    def __len__(self) -> int: ...

    def images(self, indices: list[int]) -> Tensor: ...  # B×3×H×W float [0, 1]


class TrainingSource(Protocol):
    def __len__(self) -> int: ...

    def reconstruct(self, model: INPFormer, indices: list[int]) -> Reconstruction: ...

    def describe(self) -> dict[str, Any]: ...


class DatasetImages:
    """The items of a dataset of ``Sample``, read from disk on demand."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def images(self, indices: list[int]) -> Tensor:
        return torch.stack([self.dataset[i].image for i in indices])


@dataclass(frozen=True)
class FeatureCache:
    """Every training item's encoder features, computed once (``dtype`` float32 or float16)."""

    fused: Tensor  # items×N×C
    groups: tuple[Tensor, ...]  # items×N×C each
    grid_hw: tuple[int, int]
    encode_seconds: float

    @staticmethod
    def build(
        encoder: FrozenEncoder, images: ImageSet, *, batch_size: int, dtype: torch.dtype, progress: bool
    ) -> FeatureCache:
        started = time.monotonic()
        count = len(images)
        fused: Tensor | None = None
        groups: list[Tensor] = []
        grid_hw = (0, 0)
        encoder.eval()
        for start in tqdm(range(0, count, batch_size), disable=not progress, desc="encode", unit="batch"):
            indices = list(range(start, min(start + batch_size, count)))
            feats = encoder(images.images(indices))
            if fused is None:
                fused = feats.fused.new_empty((count, *feats.fused.shape[1:]), dtype=dtype)
                groups = [fused.new_empty(fused.shape) for _ in feats.groups]
                grid_hw = feats.grid_hw
            fused[start : start + len(indices)] = feats.fused
            for cached, group in zip(groups, feats.groups, strict=True):
                cached[start : start + len(indices)] = group
        if fused is None:
            raise DataError("no training items to encode", fix="check the training images (--data-root)")
        return FeatureCache(fused, tuple(groups), grid_hw, time.monotonic() - started)

    def __len__(self) -> int:
        return self.fused.shape[0]

    def reconstruct(self, model: INPFormer, indices: list[int]) -> Reconstruction:
        index = torch.tensor(indices, dtype=torch.long)
        feats = EncodedFeatures(
            fused=self.fused[index].float(),
            groups=tuple(g[index].float() for g in self.groups),
            grid_hw=self.grid_hw,
        )
        return model.reconstruct(feats)

    def describe(self) -> dict[str, Any]:
        tensors = (self.fused, *self.groups)
        size = sum(t.numel() * t.element_size() for t in tensors)
        return {
            "kind": "feature_cache",
            "dtype": str(self.fused.dtype).removeprefix("torch."),
            "megabytes": round(size / 2**20, 1),
            "encode_seconds": round(self.encode_seconds, 3),
        }


class LiveEncoding:
    """Runs the frozen encoder on every batch (no cache)."""

    def __init__(self, images: ImageSet) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def reconstruct(self, model: INPFormer, indices: list[int]) -> Reconstruction:
        return model(self.images.images(indices))

    def describe(self) -> dict[str, Any]:
        return {"kind": "live_encoding"}


def training_dataset(config: TrainConfig, transform: ImageTransform) -> Dataset:
    """The good training images of the configured categories (one ConcatDataset for several).

    ``config.layout`` is "folder" or "mvtec" (TrainConfig refuses any other value)."""
    root = Path(config.data_root)
    if config.layout == "folder":
        return FolderDataset(root, transform)
    categories = list(config.categories) or list_categories(root)
    parts = [MvtecDataset(root, category, "train", transform) for category in categories]
    return parts[0] if len(parts) == 1 else ConcatDataset(parts)


def load_training_images(
    config: TrainConfig, transform: ImageTransform
) -> tuple[ImageSet, TrainingData, list[str]]:
    """The training items of the recipe, contract 1's record of them, and notes for the log."""
    dataset = training_dataset(config, transform)
    entries = entries_of(dataset)
    notes: list[str] = []
    if config.mode == "few-shot":
        chosen = few_shot_subset(dataset, config.shots, seed=config.seed)
        images: ImageSet = ShotViews(torch.stack([dataset[i].image for i in chosen]))
        entries = [entries[i] for i in chosen]
        notes.append(f"few-shot: {len(chosen)} shot(s), {NUM_VIEWS} fixed views each")
    else:  # "full" (TrainConfig refuses any other mode)
        images = DatasetImages(dataset)
    root = Path(config.data_root)
    names = sorted(relative_name(e.path, root) for e in entries)
    summary = TrainingData(
        layout=config.layout,
        data_root=str(root),
        categories=tuple(sorted({e.category for e in entries})),
        images_per_category=dict(sorted(Counter(e.category for e in entries).items())),
        num_images=len(entries),
        mode=config.mode,
        shots=config.shots if config.mode == "few-shot" else None,
        views_per_image=NUM_VIEWS if config.mode == "few-shot" else 1,
        num_items=len(images),
        files=tuple(names) if config.mode == "few-shot" else None,
        fingerprint=hashlib.sha256("\n".join(names).encode()).hexdigest()[:16],
    )
    return images, summary, notes
