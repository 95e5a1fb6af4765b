"""Camera pixel formats (SFNC / PFNC names) to the model's input: one table, pure functions.

The model takes RGB uint8 H×W×3; a monochrome camera's frames stay H×W uint8 (the detector makes
them RGB the way training did). ``to_model_input`` converts what a camera delivered (one row-major
uint8 buffer, as the driver holds it) into a new array it owns, so the driver's buffer can go back
at once: the conversion is the copy.

Bayer names follow SFNC: the name gives the colours of the top-left 2×2 tile read row by row, so
BayerRG8 is ``R G / G B``, BayerBG8 ``B G / G R``, BayerGR8 ``G R / B G``, BayerGB8 ``G B / R G``.
OpenCV names its Bayer codes by the tile one pixel down and right (its "BG" is SFNC's "RG"), hence
the codes in the table; tests/test_pixel_format.py builds a mosaic from a known image by the SFNC
definition of each pattern and checks the colours come back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from edge.errors import SourceError

MONO, RGB = "mono", "rgb"


def _copy(raw: np.ndarray, out: np.ndarray) -> None:
    np.copyto(out, raw)


def _reverse(raw: np.ndarray, out: np.ndarray) -> None:
    np.copyto(out, raw[..., ::-1])


def _drop_alpha(raw: np.ndarray, out: np.ndarray) -> None:
    np.copyto(out, raw[..., :3])


def _drop_alpha_reverse(raw: np.ndarray, out: np.ndarray) -> None:
    np.copyto(out, raw[..., 2::-1])


def _demosaic(code: int) -> Callable[[np.ndarray, np.ndarray], None]:
    def convert(raw: np.ndarray, out: np.ndarray) -> None:
        cv2.cvtColor(np.ascontiguousarray(raw), code, dst=out)

    return convert


@dataclass(frozen=True)
class PixelLayout:
    """How one pixel format is laid out in the buffer and how it becomes the model's input."""

    name: str  # SFNC name, as the camera's PixelFormat node and the buffer say it
    bytes_per_pixel: int  # in the delivered buffer
    output: str  # MONO (H×W) or RGB (H×W×3)
    convert: Callable[[np.ndarray, np.ndarray], None]  # (H×W[×bytes] view of the buffer, out)


PIXEL_FORMATS: dict[str, PixelLayout] = {
    layout.name: layout
    for layout in (
        PixelLayout("Mono8", 1, MONO, _copy),
        PixelLayout("RGB8", 3, RGB, _copy),
        PixelLayout("BGR8", 3, RGB, _reverse),
        PixelLayout("RGBa8", 4, RGB, _drop_alpha),
        PixelLayout("BGRa8", 4, RGB, _drop_alpha_reverse),
        PixelLayout("BayerRG8", 1, RGB, _demosaic(cv2.COLOR_BayerBG2RGB)),
        PixelLayout("BayerBG8", 1, RGB, _demosaic(cv2.COLOR_BayerRG2RGB)),
        PixelLayout("BayerGR8", 1, RGB, _demosaic(cv2.COLOR_BayerGB2RGB)),
        PixelLayout("BayerGB8", 1, RGB, _demosaic(cv2.COLOR_BayerGR2RGB)),
    )
}
SUPPORTED = tuple(PIXEL_FORMATS)


def layout_of(pixel_format: str) -> PixelLayout:
    """The table row of ``pixel_format``; a ``SourceError`` naming it and the supported ones otherwise."""
    layout = PIXEL_FORMATS.get(pixel_format)
    if layout is None:
        raise SourceError(
            f"pixel format {pixel_format!r} is not supported (supported: {', '.join(SUPPORTED)})",
            fix="set PixelFormat in the camera profile to one of the supported formats",
        )
    return layout


def output_shape(pixel_format: str, width: int, height: int) -> tuple[int, ...]:
    """Shape of the model input made from a ``width``×``height`` frame in ``pixel_format``."""
    layout = layout_of(pixel_format)
    return (height, width) if layout.output == MONO else (height, width, 3)


def buffer_view(
    data: np.ndarray, pixel_format: str, width: int, height: int, x_padding: int = 0
) -> np.ndarray:
    """The delivered bytes as H×W (one byte per pixel) or H×W×bytes, a view that skips the row padding.

    A row is ``width * bytes_per_pixel + x_padding`` bytes (``x_padding``: the producer's padding at the
    end of each row, GenTL's BUFFER_INFO_PADDING_X, in bytes). Bytes after the last row (chunk data, a
    part's trailer) are not pixels and are left alone; a buffer too small for the rows is refused.
    """
    layout = layout_of(pixel_format)
    flat = np.ascontiguousarray(data, dtype=np.uint8).reshape(-1)
    row_bytes = width * layout.bytes_per_pixel
    stride = row_bytes + x_padding
    needed = stride * (height - 1) + row_bytes  # the last row's padding may be left out
    if height <= 0 or width <= 0 or x_padding < 0 or flat.size < needed:
        raise SourceError(
            f"a {pixel_format} frame of {width}x{height} px (row padding {x_padding} bytes) needs {needed} "
            f"bytes, the buffer holds {flat.size}",
            fix="check the camera's Width, Height and PixelFormat (the frame is incomplete or mislabelled)",
        )
    shape = (height, width, layout.bytes_per_pixel)
    view = np.ndarray(shape, np.uint8, buffer=flat, strides=(stride, layout.bytes_per_pixel, 1))
    return view[..., 0] if layout.bytes_per_pixel == 1 else view


def to_model_input(
    data: np.ndarray,
    pixel_format: str,
    width: int,
    height: int,
    out: np.ndarray | None = None,
    *,
    x_padding: int = 0,
) -> np.ndarray:
    """The frame as the model's input (a new array, or written into ``out`` of the right shape);
    ``x_padding``: the producer's row padding in bytes (see ``buffer_view``)."""
    layout = layout_of(pixel_format)
    raw = buffer_view(data, pixel_format, width, height, x_padding)
    shape = output_shape(pixel_format, width, height)
    if out is None:
        out = np.empty(shape, np.uint8)
    elif out.shape != shape or out.dtype != np.uint8:
        raise ValueError(f"out has shape {out.shape} {out.dtype}, the frame needs {shape} uint8")
    layout.convert(raw, out)
    return out
