"""THE pre-processing: the device's and training's inputs agree; geometry maps back to the frame."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.errors import ModelInputError
from edge.model.preprocess import Roi, preprocess_frame, resize_and_crop, to_rgb
from export.data import ImageTransform, read_rgb


def test_mono_frames_become_three_equal_channels() -> None:
    mono = np.arange(64, dtype=np.uint8).reshape(8, 8)
    rgb = to_rgb(mono)
    assert rgb.shape == (8, 8, 3) and all(np.array_equal(rgb[..., k], mono) for k in range(3))
    assert np.array_equal(to_rgb(mono[..., None]), rgb)


@pytest.mark.parametrize(
    "image", [np.zeros((4, 4), np.float32), np.zeros((4, 4, 4), np.uint8), "not an image"]
)
def test_unusable_frames_are_refused_with_the_pixel_format_fix(image) -> None:
    with pytest.raises(ModelInputError) as caught:
        to_rgb(image)
    assert "pixel format" in caught.value.fix


def test_training_transform_is_the_device_preprocessing_bit_for_bit() -> None:
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (300, 300, 3), dtype=np.uint8)
    device, _ = preprocess_frame(frame, resize_px=146, crop_px=128)
    training = ImageTransform(resize_px=146, crop_px=128).image(frame)
    assert np.array_equal((training.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), device)


@pytest.mark.datasets
def test_device_and_training_agree_on_real_bottle_images(datasets: Path) -> None:
    """The acceptance check of issue 6: on real images the two paths give the same grey levels."""
    transform = ImageTransform(resize_px=292, crop_px=256)
    paths = sorted((datasets / "mvtec_ad" / "bottle" / "test").glob("*/00[0-2].png"))
    assert len(paths) >= 6
    worst = 0
    for path in paths:
        training = (transform.image(read_rgb(path)).permute(1, 2, 0).numpy() * 255).round().astype(np.int16)
        camera_frame = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)  # as a camera delivers it
        device, _ = preprocess_frame(camera_frame, resize_px=292, crop_px=256)
        worst = max(worst, int(np.abs(training - device.astype(np.int16)).max()))
    assert worst <= 1, f"device and training pre-processing differ by {worst} grey levels"


def test_shrinking_removes_detail_finer_than_an_output_pixel_and_growing_is_bilinear() -> None:
    checker = (np.indices((64, 64)).sum(axis=0) % 2 * 255).astype(np.uint8)
    frame = np.repeat(checker[..., None], 3, axis=2)
    shrunk = resize_and_crop(frame, 32, 32)
    assert np.abs(shrunk.astype(int) - 128).max() <= 8  # a 1-px checkerboard cannot survive halving: grey
    ramp = np.repeat(np.repeat(np.arange(0, 256, 64, dtype=np.uint8)[None, :, None], 4, axis=0), 3, axis=2)
    grown = resize_and_crop(ramp, 8, 8)
    assert np.array_equal(grown, cv2.resize(ramp, (8, 8), interpolation=cv2.INTER_LINEAR))


@pytest.mark.datasets
def test_the_resize_matches_torch_antialiased_bilinear_on_real_images(datasets: Path) -> None:
    """Why this resize: it gives training the images the authors' pipeline (PIL / torch antialiased
    bilinear) gives, to 1 grey level at the 99th percentile, at OpenCV speed on the device."""
    import torch
    import torch.nn.functional as F

    for path in sorted((datasets / "mvtec_ad" / "bottle" / "test").glob("*/001.png")):
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float()
        reference = F.interpolate(x, size=(292, 292), mode="bilinear", antialias=True, align_corners=False)
        reference = reference.round().clamp(0, 255)[0].permute(1, 2, 0).numpy()
        ours = resize_and_crop(rgb, 292, 292).astype(np.float32)
        assert np.percentile(np.abs(ours - reference), 99) <= 1.0, path


def test_roi_outside_the_frame_is_refused_naming_the_config_key() -> None:
    with pytest.raises(ModelInputError, match="outside the 100x50 frame") as caught:
        preprocess_frame(np.zeros((50, 100, 3), np.uint8), resize_px=32, crop_px=32, roi=Roi(80, 0, 30, 10))
    assert "roi" in caught.value.fix


def marked_frame(width: int, height: int, spot: tuple[int, int, int, int]) -> np.ndarray:
    frame = np.zeros((height, width, 3), np.uint8)
    x0, y0, x1, y1 = spot
    frame[y0:y1, x0:x1] = 255
    return frame


@pytest.mark.parametrize("fit", ["stretch", "letterbox"])
def test_geometry_maps_model_pixels_back_to_the_frame(fit: str) -> None:
    spot = (260, 150, 300, 170)  # a bright rectangle inside the ROI, frame pixels
    frame = marked_frame(640, 480, spot)
    roi = Roi(200, 100, 200, 120)
    model_input, geometry = preprocess_frame(frame, resize_px=146, crop_px=128, roi=roi, fit=fit)
    rows, cols = np.nonzero(model_input[..., 0] > 127)
    box = geometry.box_to_frame(cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
    step = 1 / min(geometry.scale_x, geometry.scale_y)  # one model pixel in frame pixels
    for found, expected in zip((box.x0, box.y0, box.x1, box.y1), spot, strict=True):
        assert abs(found - expected) <= 1.5 * step


def test_letterbox_keeps_the_aspect_ratio_and_marks_the_padding() -> None:
    frame = np.full((100, 200, 3), 90, np.uint8)
    model_input, geometry = preprocess_frame(frame, resize_px=64, crop_px=64, fit="letterbox")
    assert geometry.scale_x == pytest.approx(geometry.scale_y, rel=0.02)
    u0, v0, u1, v1 = geometry.valid_box()
    assert (u0, u1) == (0, 64) and v1 - v0 == 32
    assert np.all(model_input == 90)  # padded with the region's mean colour: no hard edge


@pytest.mark.parametrize("fit", ["stretch", "letterbox"])
def test_a_mono_frame_gives_the_model_input_of_its_rgb_copy(fit: str) -> None:
    rng = np.random.default_rng(1)
    mono = rng.integers(0, 256, (300, 500), dtype=np.uint8)
    roi = Roi(40, 20, 400, 250)
    from_mono, _ = preprocess_frame(mono, resize_px=146, crop_px=128, roi=roi, fit=fit)
    from_rgb, _ = preprocess_frame(
        cv2.cvtColor(mono, cv2.COLOR_GRAY2RGB), resize_px=146, crop_px=128, roi=roi, fit=fit
    )
    assert from_mono.shape == (128, 128, 3) and np.array_equal(from_mono, from_rgb)
