"""Datasets for training and evaluation: MVTec-layout folders, plain folders, few-shot sampling.

Images are read with OpenCV (BGR → RGB, grayscale → 3 channels) and turned into 3×H×W float RGB
in [0, 1] by ``ImageTransform``: a square resize (aspect ratio not kept) followed by a centre crop
(INP_FORMER.md §1), both done by ``edge.model.preprocess.resize_and_crop``, the device's own code.
Masks get a nearest resize, the same crop, and are binarised at 0.5.

A folder, image or mask the user pointed at that cannot be used is a ``DataError`` naming it and
saying what to do; a wrong argument from code (a bad split name) stays a ``ValueError``.

MVTec layout::

    <root>/<category>/train/good/*
    <root>/<category>/test/<good | defect type>/<stem>.<ext>
    <root>/<category>/ground_truth/<defect type>/<stem>_mask.png
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import ConcatDataset, Dataset

from edge.errors import ConfigError, DataError
from edge.model.preprocess import crop_offset, resize_and_crop

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
GOOD = "good"
Split = Literal["train", "test"]


@dataclass(frozen=True)
class Sample:
    image: Tensor  # 3×H×W float32 RGB in [0, 1]
    mask: Tensor | None  # H×W bool (test split; all False for good images), None when unknown
    label: int  # 0 good, 1 defect
    defect_type: str  # "good" or the defect folder name
    category: str
    path: str


@dataclass(frozen=True)
class ImageTransform:
    """Square resize to ``resize_px`` (aspect ratio not kept), then a centre crop of ``crop_px``."""

    resize_px: int
    crop_px: int

    def __post_init__(self) -> None:
        if not 0 < self.crop_px <= self.resize_px:
            raise ConfigError(
                f"input size (crop) {self.crop_px} px must be positive and at most the resize {self.resize_px} px",
                fix="pick --input-size no larger than --resize (or leave --resize to the encoder's default)",
            )

    def image(self, rgb_u8: np.ndarray) -> Tensor:
        """H×W×3 uint8 RGB → 3×crop×crop float32 in [0, 1], through THE device pre-processing."""
        pixels = resize_and_crop(rgb_u8, self.resize_px, self.crop_px)
        return torch.from_numpy(pixels).permute(2, 0, 1).float() / 255.0

    def mask(self, mask_u8: np.ndarray) -> Tensor:
        """H×W (0 = background) → crop×crop bool."""
        x = torch.from_numpy((mask_u8 > 0).astype(np.float32))[None, None]
        x = F.interpolate(x, size=(self.resize_px, self.resize_px), mode="nearest-exact")
        return self._crop(x[0, 0]) > 0.5

    def _crop(self, x: Tensor) -> Tensor:
        top = crop_offset(self.resize_px, self.crop_px)
        return x[..., top : top + self.crop_px, top : top + self.crop_px]


@dataclass(frozen=True)
class Entry:
    """One image on disk and what is known about it (no pixels)."""

    path: Path
    label: int
    defect_type: str
    category: str
    mask_path: Path | None


def read_rgb(path: Path) -> np.ndarray:
    """Any image file OpenCV decodes → H×W×3 uint8 RGB (grayscale is repeated to 3 channels)."""
    bgr = _decode(path, cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_mask(path: Path) -> np.ndarray:
    """A mask file → H×W uint8, 255 where any colour channel is non-zero (3-channel masks too)."""
    raw = _decode(path, cv2.IMREAD_UNCHANGED)
    if raw.ndim == 3:
        raw = raw[..., :3].max(axis=2)
    return np.where(raw > 0, 255, 0).astype(np.uint8)


def _decode(path: Path, flags: int) -> np.ndarray:
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise DataError(
            f"cannot read image {path}: {exc.strerror or exc}",
            fix="check that the file exists and is readable",
        ) from None
    image = cv2.imdecode(data, flags) if data.size else None
    if image is None:
        raise DataError(
            f"{path} is not a readable image (empty or corrupt)", fix="replace or remove the file"
        )
    return image


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def list_categories(root: Path) -> list[str]:
    """Categories of an MVTec-layout root: the folders that hold ``train/good``."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            f"dataset folder {root} does not exist",
            fix="pass the folder that holds the categories (--data-root)",
        )
    found = sorted(d.name for d in root.iterdir() if (d / "train" / GOOD).is_dir())
    if not found:
        hint = "it looks like a category folder: pass its parent" if (root / "train" / GOOD).is_dir() else ""
        raise DataError(
            f"no categories in {root}: expected the MVTec layout <root>/<category>/train/good/*.png",
            fix=hint or "point --data-root at the folder that holds <category>/train/good/",
        )
    return found


class _Entries(Dataset):
    """A dataset over a list of ``Entry`` values, read and transformed on access."""

    def __init__(self, entries: list[Entry], transform: ImageTransform, *, good_masks: bool) -> None:
        self.entries = entries
        self.transform = transform
        self.good_masks = good_masks  # give good images an all-False mask (test split)

    def __len__(self) -> int:
        return len(self.entries)

    def category_of(self, index: int) -> str:
        return self.entries[index].category

    def __getitem__(self, index: int) -> Sample:
        entry = self.entries[index]
        rgb = read_rgb(entry.path)
        image = self.transform.image(rgb)
        mask = None
        if entry.mask_path is not None:
            mask = self.transform.mask(_matching_mask(entry, rgb.shape[:2]))
        elif entry.label == 0 and self.good_masks:
            mask = torch.zeros(image.shape[-2:], dtype=torch.bool)
        return Sample(
            image=image,
            mask=mask,
            label=entry.label,
            defect_type=entry.defect_type,
            category=entry.category,
            path=str(entry.path),
        )


def _matching_mask(entry: Entry, image_hw: tuple[int, int]) -> np.ndarray:
    raw = read_mask(entry.mask_path)
    if raw.shape != tuple(image_hw):
        raise DataError(
            f"mask {entry.mask_path} is {raw.shape[1]}x{raw.shape[0]} but image {entry.path} is "
            f"{image_hw[1]}x{image_hw[0]}",
            fix="give every mask the size of its image",
        )
    return raw


class MvtecDataset(_Entries):
    """One category of an MVTec-layout folder. Test samples of good images carry an all-False mask."""

    def __init__(
        self,
        root: Path,
        category: str,
        split: Split,
        transform: ImageTransform,
        *,
        require_masks: bool = True,
    ) -> None:
        folder = Path(root) / category
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        entries = _train_entries(folder, category) if split == "train" else _test_entries(folder, category)
        if split == "test" and require_masks:
            _check_masks(entries)
        super().__init__(entries, transform, good_masks=split == "test")
        self.category = category
        self.split = split


def _train_entries(folder: Path, category: str) -> list[Entry]:
    good = folder / "train" / GOOD
    files = _layout_files(good, folder)
    return [Entry(p, 0, GOOD, category, None) for p in files]


def _test_entries(folder: Path, category: str) -> list[Entry]:
    test = folder / "test"
    if not test.is_dir():
        raise DataError(
            f"{test} does not exist: expected the MVTec layout {folder}/test/<good | defect type>/*.png",
            fix="check the dataset root and the category name (--data-root, --category)",
        )
    entries = []
    for kind in sorted(d for d in test.iterdir() if d.is_dir()):
        label = 0 if kind.name == GOOD else 1
        for path in image_files(kind):
            mask = None if label == 0 else _find_mask(folder / "ground_truth" / kind.name, path.stem)
            entries.append(Entry(path, label, kind.name, category, mask))
    if not entries:
        raise DataError(
            f"no test images under {test}", fix=f"put the test images in {test}/<good | defect type>/*.png"
        )
    return entries


def _layout_files(images: Path, category_folder: Path) -> list[Path]:
    if not images.is_dir():
        raise DataError(
            f"{images} does not exist: expected the MVTec layout {category_folder}/train/good/*.png",
            fix="check the dataset root and the category name (--data-root, --category)",
        )
    files = image_files(images)
    if not files:
        raise DataError(f"no images in {images}", fix=f"add images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def _find_mask(gt_folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}_mask.png", f"{stem}.png"):
        if (gt_folder / name).is_file():
            return gt_folder / name
    return None


def _check_masks(entries: list[Entry]) -> None:
    missing = [e.path for e in entries if e.label == 1 and e.mask_path is None]
    if missing:
        gt = missing[0].parents[2] / "ground_truth" / missing[0].parent.name
        raise DataError(
            f"{len(missing)} defective test image(s) have no mask, e.g. {missing[0]} (looked for "
            f"{gt / (missing[0].stem + '_mask.png')})",
            fix="add the masks (or, from Python, pass require_masks=False)",
        )


class FolderDataset(_Entries):
    """A plain folder of good images (training), e.g. parts collected at the line."""

    def __init__(self, folder: Path, transform: ImageTransform, *, category: str | None = None) -> None:
        folder = Path(folder)
        if not folder.is_dir():
            raise DataError(f"image folder {folder} does not exist", fix="pass a folder of good images")
        files = image_files(folder)
        if not files:
            raise DataError(f"no images in {folder}", fix=f"add good images ({', '.join(IMAGE_SUFFIXES)})")
        name = category or folder.name
        super().__init__([Entry(p, 0, GOOD, name, None) for p in files], transform, good_masks=False)
        self.category = name


def relative_name(path: Path, root: Path) -> str:
    """How training records an image: its path relative to the data root (as is when outside it)."""
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return Path(path).as_posix()


def recorded_images(dataset: _Entries, root: Path, files: Sequence[str] | None, *, fix: str) -> _Entries:
    """The images a model was trained on: all of ``dataset``, or only the recorded few-shot ``files``.

    ``files`` are paths relative to the data root ``root``, as ``TrainingData.files`` records them
    (``None``: every image). None of them in this dataset is a ``DataError`` with ``fix``.
    """
    if files is None:
        return dataset
    wanted = set(files)
    kept = [entry for entry in dataset.entries if relative_name(entry.path, root) in wanted]
    if not kept:
        name = getattr(dataset, "category", "") or str(root)
        raise DataError(f"none of the recorded few-shot files belong to {name!r} under {root}", fix=fix)
    return _Entries(kept, dataset.transform, good_masks=dataset.good_masks)


def category_of(dataset: Dataset, index: int) -> str:
    """The category of one item without reading its pixels where the dataset allows it."""
    if isinstance(dataset, ConcatDataset):
        part = bisect.bisect_right(dataset.cumulative_sizes, index)
        offset = index - (dataset.cumulative_sizes[part - 1] if part else 0)
        return category_of(dataset.datasets[part], offset)
    if hasattr(dataset, "category_of"):
        return dataset.category_of(index)
    return dataset[index].category


def entries_of(dataset: Dataset) -> list[Entry]:
    """Every ``Entry`` of one of our datasets (or a ConcatDataset of them)."""
    if isinstance(dataset, ConcatDataset):
        return [e for part in dataset.datasets for e in entries_of(part)]
    return list(dataset.entries)


def few_shot_subset(dataset: Dataset, k: int, seed: int = 1) -> list[int]:
    """``k`` random indices per category (``random.sample``, one seeded stream, categories in order)."""
    if k < 1:
        raise ValueError(f"shots must be at least 1, got {k}")
    by_category: dict[str, list[int]] = {}
    for index in range(len(dataset)):
        by_category.setdefault(category_of(dataset, index), []).append(index)
    rng = random.Random(seed)
    chosen = []
    for category, indices in by_category.items():
        if len(indices) < k:
            raise DataError(
                f"category {category!r} has {len(indices)} training image(s), fewer than {k} shots",
                fix="use fewer shots (--few-shot) or add images",
            )
        chosen.extend(sorted(rng.sample(indices, k)))
    return chosen
