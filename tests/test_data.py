"""Datasets (MVTec layout, plain folders, few-shot sampling) and the 22 few-shot views."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import ConcatDataset

from edge.errors import DataError
from export.augment import NUM_VIEWS, VIEW_NAMES, ShotViews, expand_shot, rotate, translate
from export.data import (
    FolderDataset,
    ImageTransform,
    MvtecDataset,
    few_shot_subset,
    list_categories,
    recorded_images,
)

SQUARE = (slice(20, 44), slice(16, 40))  # rows, cols of the defect in the 64×64 test images


def _write(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)
    return path


def _noise_bgr(seed: int, size_px: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 120, (size_px, size_px, 3), dtype=np.uint8)


def _defect_pair(seed: int) -> tuple[np.ndarray, np.ndarray]:
    image = _noise_bgr(seed)
    image[SQUARE] = 255
    mask = np.zeros((64, 64), np.uint8)
    mask[SQUARE] = 255
    return image, mask


@pytest.fixture
def mvtec_root(tmp_path: Path) -> Path:
    root = tmp_path / "mvtec"
    for category in ("alpha", "beta"):
        base = root / category
        for i in range(5):
            _write(base / "train" / "good" / f"{i:03d}.png", _noise_bgr(i))
        _write(base / "test" / "good" / "000.png", _noise_bgr(10))
        for i in range(2):
            image, mask = _defect_pair(20 + i)
            _write(base / "test" / "scratch" / f"{i:03d}.png", image)
            if i == 1:  # a 3-channel mask whose foreground is only in one channel (glass_ad style)
                mask = np.stack([np.zeros_like(mask), np.zeros_like(mask), mask], axis=2)
            _write(base / "ground_truth" / "scratch" / f"{i:03d}_mask.png", mask)
    return root


def test_list_categories_finds_the_category_folders(mvtec_root: Path) -> None:
    assert list_categories(mvtec_root) == ["alpha", "beta"]


def test_list_categories_on_a_category_folder_says_to_pass_the_parent(mvtec_root: Path) -> None:
    with pytest.raises(DataError, match="pass its parent") as info:
        list_categories(mvtec_root / "alpha")
    assert str(mvtec_root / "alpha") in str(info.value)


def test_train_split_gives_good_rgb_images_of_the_crop_size(mvtec_root: Path) -> None:
    dataset = MvtecDataset(mvtec_root, "alpha", "train", ImageTransform(resize_px=40, crop_px=32))
    assert len(dataset) == 5
    sample = dataset[0]
    assert sample.image.shape == (3, 32, 32) and sample.image.dtype == torch.float32
    assert sample.image.min() >= 0.0 and sample.image.max() <= 1.0
    assert (sample.mask, sample.label, sample.defect_type, sample.category) == (None, 0, "good", "alpha")


def test_bgr_files_become_rgb(tmp_path: Path) -> None:
    red_bgr = np.zeros((16, 16, 3), np.uint8)
    red_bgr[..., 2] = 255
    _write(tmp_path / "parts" / "red.png", red_bgr)
    image = FolderDataset(tmp_path / "parts", ImageTransform(16, 16))[0].image
    assert torch.equal(image[0], torch.ones(16, 16)) and image[1:].abs().max() == 0


def test_grayscale_files_give_three_equal_channels(tmp_path: Path) -> None:
    _write(
        tmp_path / "parts" / "gray.png", np.random.default_rng(0).integers(0, 255, (20, 20), dtype=np.uint8)
    )
    image = FolderDataset(tmp_path / "parts", ImageTransform(20, 16))[0].image
    assert image.shape == (3, 16, 16)
    assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])


def test_resize_does_not_keep_aspect_and_crop_is_central(tmp_path: Path) -> None:
    wide = np.zeros((10, 40, 3), np.uint8)
    wide[:, 18:22] = 255  # a bright vertical bar at the centre
    _write(tmp_path / "parts" / "wide.png", wide)
    image = FolderDataset(tmp_path / "parts", ImageTransform(20, 10))[0].image
    assert image.shape == (3, 10, 10)
    column_means = image[0].mean(dim=0)
    assert column_means[4:6].min() > 0.85 and column_means[:3].max() == 0 and column_means[7:].max() == 0


def test_masks_align_with_the_defect_pixels(mvtec_root: Path) -> None:
    dataset = MvtecDataset(mvtec_root, "alpha", "test", ImageTransform(resize_px=64, crop_px=48))
    defect = next(dataset[i] for i in range(len(dataset)) if dataset[i].defect_type == "scratch")
    assert defect.label == 1 and defect.mask.dtype == torch.bool and defect.mask.shape == (48, 48)
    assert torch.equal(defect.mask, defect.image.min(dim=0).values > 0.9)


def test_resized_masks_stay_aligned(mvtec_root: Path) -> None:
    dataset = MvtecDataset(mvtec_root, "alpha", "test", ImageTransform(resize_px=80, crop_px=64))
    for sample in (dataset[i] for i in range(len(dataset)) if dataset[i].label == 1):
        bright = sample.image.min(dim=0).values > 0.75
        agreement = (sample.mask == bright).float().mean().item()
        assert agreement > 0.97 and sample.mask.any()


def test_three_channel_masks_count_any_channel_as_foreground(mvtec_root: Path) -> None:
    dataset = MvtecDataset(mvtec_root, "alpha", "test", ImageTransform(resize_px=64, crop_px=64))
    masks = {Path(s.path).name: s.mask for s in (dataset[i] for i in range(len(dataset))) if s.label == 1}
    assert masks["001.png"].sum().item() == 24 * 24
    assert torch.equal(masks["000.png"], masks["001.png"])


def test_good_test_images_have_empty_masks(mvtec_root: Path) -> None:
    dataset = MvtecDataset(mvtec_root, "beta", "test", ImageTransform(resize_px=64, crop_px=48))
    good = [dataset[i] for i in range(len(dataset)) if dataset[i].label == 0]
    assert len(good) == 1 and good[0].mask.shape == (48, 48) and not good[0].mask.any()


def test_unknown_category_error_names_the_folder(mvtec_root: Path) -> None:
    with pytest.raises(DataError) as info:
        MvtecDataset(mvtec_root, "gamma", "train", ImageTransform(64, 48))
    assert str(mvtec_root / "gamma" / "train" / "good") in str(info.value)


def test_missing_mask_names_the_expected_mask_file(mvtec_root: Path) -> None:
    (mvtec_root / "alpha" / "ground_truth" / "scratch" / "000_mask.png").unlink()
    with pytest.raises(DataError, match="000_mask.png"):
        MvtecDataset(mvtec_root, "alpha", "test", ImageTransform(64, 48))
    lenient = MvtecDataset(mvtec_root, "alpha", "test", ImageTransform(64, 48), require_masks=False)
    assert any(lenient[i].mask is None for i in range(len(lenient)))


def test_folder_dataset_reads_every_image_suffix_and_ignores_other_files(tmp_path: Path) -> None:
    for i, suffix in enumerate((".png", ".jpg", ".jpeg", ".bmp", ".tif")):
        _write(tmp_path / "parts" / f"part{i}{suffix}", _noise_bgr(i, 24))
    (tmp_path / "parts" / "notes.txt").write_text("not an image")
    dataset = FolderDataset(tmp_path / "parts", ImageTransform(24, 16))
    assert len(dataset) == 5 and dataset[4].category == "parts"


def test_recorded_images_keep_only_the_recorded_shots_of_a_folder(tmp_path: Path) -> None:
    for i in range(4):
        _write(tmp_path / "parts" / f"part{i}.png", _noise_bgr(i, 24))
    dataset = FolderDataset(tmp_path / "parts", ImageTransform(24, 16))
    assert recorded_images(dataset, tmp_path / "parts", None, fix="x") is dataset
    shots = recorded_images(dataset, tmp_path / "parts", ("part2.png", "part0.png"), fix="x")
    assert [Path(shots[i].path).name for i in range(len(shots))] == ["part0.png", "part2.png"]
    with pytest.raises(DataError, match="none of the recorded few-shot files") as caught:
        recorded_images(dataset, tmp_path / "parts", ("elsewhere/part0.png",), fix="pass --data-root")
    assert caught.value.fix == "pass --data-root"


def test_empty_folder_error_names_the_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=str(tmp_path / "empty")):
        FolderDataset(tmp_path / "empty", ImageTransform(24, 16))


def test_few_shot_subset_takes_k_per_category_and_is_seeded(mvtec_root: Path) -> None:
    transform = ImageTransform(64, 48)
    both = ConcatDataset([MvtecDataset(mvtec_root, c, "train", transform) for c in ("alpha", "beta")])
    chosen = few_shot_subset(both, 2, seed=1)
    assert len(chosen) == 4
    assert sum(i < 5 for i in chosen) == 2 and sum(i >= 5 for i in chosen) == 2
    assert few_shot_subset(both, 2, seed=1) == chosen
    assert any(few_shot_subset(both, 2, seed=s) != chosen for s in range(2, 6))


def test_few_shot_with_too_few_images_names_the_category(mvtec_root: Path) -> None:
    dataset = MvtecDataset(mvtec_root, "beta", "train", ImageTransform(64, 48))
    with pytest.raises(DataError, match="'beta' has 5"):
        few_shot_subset(dataset, 8)


def test_real_glass_masks_are_read(datasets: Path) -> None:
    dataset = MvtecDataset(datasets / "glass_ad", "glass", "test", ImageTransform(256, 224))
    defect = next(dataset[i] for i in range(len(dataset)) if dataset.entries[i].label == 1)
    assert defect.image.shape == (3, 224, 224) and defect.mask.any()


# ---------------------------------------------------------------- few-shot views


def _image(size_px: int = 20) -> torch.Tensor:
    return torch.rand(3, size_px, size_px, generator=torch.Generator().manual_seed(0))


def test_expand_shot_gives_22_views_with_the_original_first() -> None:
    image = _image()
    views = expand_shot(image)
    assert views.shape == (22, 3, 20, 20) and NUM_VIEWS == 22 and len(set(VIEW_NAMES)) == 22
    assert torch.equal(views[0], image)
    assert all(not torch.equal(views[i], image) for i in range(1, 22))


def test_flip_and_quarter_rotations_are_exact() -> None:
    image = _image()
    views = dict(zip(VIEW_NAMES, expand_shot(image), strict=True))
    assert torch.equal(views["hflip"], image.flip(-1))
    for quarters in (1, 2, 3):
        assert torch.equal(views[f"rotate_{90 * quarters}deg"], torch.rot90(image, quarters, dims=(-2, -1)))


def test_grayscale_view_has_equal_channels() -> None:
    gray = dict(zip(VIEW_NAMES, expand_shot(_image()), strict=True))["grayscale"]
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])


def test_translation_by_0_2_grid_units_shifts_a_20px_image_by_2px() -> None:
    image = _image().unsqueeze(0)
    shifted = translate(image, 0.2, 0.2)
    torch.testing.assert_close(shifted[..., :-2, :-2], image[..., 2:, 2:], atol=1e-5, rtol=0)


def test_affine_rotation_by_a_right_angle_matches_rot90() -> None:
    image = _image().unsqueeze(0)
    turned = rotate(image, math.pi / 2)
    candidates = [torch.rot90(image, k, dims=(-2, -1)) for k in (1, 3)]
    assert any(torch.allclose(turned, c, atol=1e-5) for c in candidates)


def test_shot_views_index_the_same_views_as_expand_shot() -> None:
    shots = torch.stack([_image(), _image().flip(0)])
    views = ShotViews(shots)
    assert len(views) == 44
    expected = torch.stack([expand_shot(shots[1])[1], expand_shot(shots[0])[0], expand_shot(shots[1])[21]])
    assert torch.equal(views.images([23, 0, 43]), expected)


def test_unreadable_image_is_a_data_error_naming_the_file_and_the_fix(tmp_path: Path) -> None:
    broken = tmp_path / "parts" / "broken.png"
    broken.parent.mkdir()
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    dataset = FolderDataset(broken.parent, ImageTransform(24, 16))
    with pytest.raises(DataError, match="not a readable image") as info:
        dataset[0]
    assert str(broken) in str(info.value) and info.value.fix
