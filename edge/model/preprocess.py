"""THE pre-processing: what a frame becomes before the model sees it. Training uses it too.

Steps: colour to RGB (mono repeated to three channels), region of interest cropped first, then the
square resize of contract 1 (``RESIZE_METHOD``: a Gaussian anti-aliasing pre-filter, then bilinear
sampling, on uint8; see ``resize_to``), then the centre crop to the model's input size. ``export/``
calls ``resize_and_crop`` on every training and evaluation image, so what the device feeds the model
is, to the grey level, what training fed it.

A non-square region becomes the model's square in one of two ways (``FITS``):

- ``stretch`` (default): both sides resized to ``resize_px``, aspect ratio not kept. This is what
  training does to every image, so a region with the training images' aspect ratio looks as in
  training.
- ``letterbox``: the longer side resized to ``resize_px``, aspect ratio kept, the rest padded with
  the region's mean colour; the padding is outside the part and ``Geometry.valid_box`` says where
  the image is, so regions found in the padding are ignored.

``Geometry`` maps model-input pixels back to frame pixels (through the crop, the resize and the
ROI), so defect boxes are reported where the part is in the camera frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.errors import ModelInputError
from edge.model.contract import RESIZE_METHOD

FITS = ("stretch", "letterbox")


@dataclass(frozen=True)
class Roi:
    """A rectangle in frame pixels: left, top, width, height."""

    x: int
    y: int
    width: int
    height: int

    def fits_in(self, frame_hw: tuple[int, int]) -> bool:
        height, width = frame_hw
        return (
            self.x >= 0
            and self.y >= 0
            and self.width > 0
            and self.height > 0
            and self.x + self.width <= width
            and self.y + self.height <= height
        )


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in frame pixels (x0, y0 inclusive; x1, y1 exclusive)."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0


@dataclass(frozen=True)
class Geometry:
    """How model-input pixels relate to frame pixels for one pre-processed frame."""

    roi: Roi
    scale_x: float  # resized pixels per ROI pixel
    scale_y: float
    pad_x: float  # letterbox padding, resized pixels (0 for stretch)
    pad_y: float
    crop_left: int  # centre-crop offset inside the resized square
    crop_top: int
    input_px: int  # the model's input side

    def to_frame(self, u: float, v: float) -> tuple[float, float]:
        """A point in model-input pixel coordinates (edges, not centres) → frame coordinates."""
        x = (u + self.crop_left - self.pad_x) / self.scale_x + self.roi.x
        y = (v + self.crop_top - self.pad_y) / self.scale_y + self.roi.y
        return x, y

    def box_to_frame(self, u0: float, v0: float, u1: float, v1: float) -> Box:
        """A box in model-input pixels → frame pixels, clipped to the ROI."""
        x0, y0 = self.to_frame(u0, v0)
        x1, y1 = self.to_frame(u1, v1)
        r = self.roi
        return Box(max(x0, r.x), max(y0, r.y), min(x1, r.x + r.width), min(y1, r.y + r.height))

    def frame_px_per_input_px(self) -> float:
        """Frame area (px²) covered by one model-input pixel."""
        return 1.0 / (self.scale_x * self.scale_y)

    def valid_box(self) -> tuple[int, int, int, int]:
        """(u0, v0, u1, v1): the model-input pixels that show the ROI (all of them for stretch)."""
        u0 = max(0, int(np.ceil(self.pad_x - self.crop_left)))
        v0 = max(0, int(np.ceil(self.pad_y - self.crop_top)))
        u1 = min(self.input_px, int(np.floor(self.pad_x + self.roi.width * self.scale_x - self.crop_left)))
        v1 = min(self.input_px, int(np.floor(self.pad_y + self.roi.height * self.scale_y - self.crop_top)))
        return u0, v0, u1, v1


def frame_pixels(image: np.ndarray) -> np.ndarray:
    """A checked frame: uint8 H×W (mono, H×W×1 squeezed) or H×W×3 RGB, else a ModelInputError."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        kind = image.dtype if isinstance(image, np.ndarray) else type(image).__name__
        raise ModelInputError(
            f"frame must be a uint8 numpy array, got {kind}",
            fix="convert the camera's pixel format to Mono8 or RGB8 first (edge/camera/pixel_format.py)",
        )
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3):
        return image
    raise ModelInputError(
        f"frame has shape {image.shape}; expected H×W (mono) or H×W×3 (RGB)",
        fix="convert the camera's pixel format to Mono8 or RGB8 first (edge/camera/pixel_format.py)",
    )


def to_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 H×W (mono), H×W×1 or H×W×3 RGB → H×W×3 RGB."""
    pixels = frame_pixels(image)
    return cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB) if pixels.ndim == 2 else pixels


def resize_square(rgb: np.ndarray, size_px: int) -> np.ndarray:
    """THE resize (contract 1 ``RESIZE_METHOD``): to size×size, aspect ratio not kept."""
    return resize_to(rgb, size_px, size_px)


def resize_to(rgb: np.ndarray, width_px: int, height_px: int) -> np.ndarray:
    """THE resize: a Gaussian pre-filter per shrinking axis, then bilinear sampling (half-pixel centres).

    Shrinking by a factor s needs an anti-aliasing low-pass. Training used to resize with torch's
    antialiased bilinear (PIL's triangle filter of radius s); a Gaussian with the same variance as
    that triangle after the bilinear sampling's own (sigma² = (s² - 1) / 6) gives the same images to
    within 1 grey level at the 99th percentile on real bottle images, at OpenCV speed (~1 ms for a
    900 px frame). Growing (s <= 1) is plain bilinear.
    """
    height, width = rgb.shape[:2]
    if (width, height) == (width_px, height_px):
        return rgb
    kernel_x = _antialias_kernel(width / width_px)
    kernel_y = _antialias_kernel(height / height_px)
    if kernel_x.size > 1 or kernel_y.size > 1:
        rgb = cv2.sepFilter2D(rgb, -1, kernel_x, kernel_y, borderType=cv2.BORDER_REFLECT)
    return cv2.resize(rgb, (width_px, height_px), interpolation=cv2.INTER_LINEAR)


def _antialias_kernel(scale: float) -> np.ndarray:
    """The 1-D Gaussian pre-filter for shrinking by ``scale`` (a single 1 when not shrinking)."""
    variance = (scale * scale - 1.0) / 6.0
    if variance <= 1e-6:
        return np.ones(1, np.float32)
    sigma = float(np.sqrt(variance))
    return cv2.getGaussianKernel(2 * int(np.ceil(3.0 * sigma)) + 1, sigma, cv2.CV_32F)


def crop_offset(resize_px: int, crop_px: int) -> int:
    """Left / top offset of the centre crop (rounded half away, as training always did)."""
    return int(round((resize_px - crop_px) / 2.0))


def resize_and_crop(rgb: np.ndarray, resize_px: int, crop_px: int) -> np.ndarray:
    """Square resize then centre crop: the whole pre-processing of a training image."""
    if not 0 < crop_px <= resize_px:
        raise ModelInputError(
            f"crop {crop_px} px must be positive and at most the resize {resize_px} px",
            fix="pick a crop (input size) no larger than the resize",
        )
    top = crop_offset(resize_px, crop_px)
    resized = resize_square(to_rgb(rgb), resize_px)
    return np.ascontiguousarray(resized[top : top + crop_px, top : top + crop_px])


def preprocess_frame(
    image: np.ndarray, *, resize_px: int, crop_px: int, roi: Roi | None = None, fit: str = "stretch"
) -> tuple[np.ndarray, Geometry]:
    """A camera frame → the model's uint8 crop×crop×3 RGB input, and how its pixels map back.

    A mono frame stays one channel through the crop and the resize and becomes RGB at the model's
    size (the filters work per channel, so the result is the same, for a third of the work).
    """
    pixels = frame_pixels(image)
    frame_hw = pixels.shape[:2]
    roi = roi or Roi(0, 0, frame_hw[1], frame_hw[0])
    if not roi.fits_in(frame_hw):
        raise ModelInputError(
            f"region of interest {roi} lies outside the {frame_hw[1]}x{frame_hw[0]} frame",
            fix="fix roi in the station config (x, y, width, height in frame pixels)",
        )
    if fit not in FITS:
        raise ModelInputError(f"fit {fit!r} is not one of {FITS}", fix="use stretch or letterbox")
    region = pixels[roi.y : roi.y + roi.height, roi.x : roi.x + roi.width]
    offset = crop_offset(resize_px, crop_px)
    if fit == "stretch":
        square = resize_square(region, resize_px)
        scale_x, scale_y, pad_x, pad_y = resize_px / roi.width, resize_px / roi.height, 0.0, 0.0
    else:
        square, scale_x, scale_y, pad_x, pad_y = _letterbox(region, resize_px)
    model_input = to_rgb(np.ascontiguousarray(square[offset : offset + crop_px, offset : offset + crop_px]))
    geometry = Geometry(roi, scale_x, scale_y, pad_x, pad_y, offset, offset, crop_px)
    return model_input, geometry


def _letterbox(region: np.ndarray, size_px: int) -> tuple[np.ndarray, float, float, float, float]:
    height, width = region.shape[:2]
    scale = size_px / max(width, height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    resized = resize_to(region, new_w, new_h)
    channels = region.shape[2:]  # () for mono, (3,) for RGB
    fill = region.reshape(-1, *channels).mean(axis=0).round().astype(np.uint8)
    canvas = np.empty((size_px, size_px, *channels), np.uint8)
    canvas[:] = fill
    left, top = (size_px - new_w) // 2, (size_px - new_h) // 2
    canvas[top : top + new_h, left : left + new_w] = resized
    return canvas, new_w / width, new_h / height, float(left), float(top)


__all__ = [
    "FITS",
    "RESIZE_METHOD",
    "Box",
    "Geometry",
    "Roi",
    "crop_offset",
    "preprocess_frame",
    "resize_and_crop",
    "resize_square",
    "to_rgb",
]
