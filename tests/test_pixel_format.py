"""Camera pixel formats to the model's input: the table, every Bayer order against a known pattern."""

from __future__ import annotations

import numpy as np
import pytest

from edge.camera.pixel_format import PIXEL_FORMATS, SUPPORTED, output_shape, to_model_input
from edge.errors import SourceError

# A 2x3 image whose every channel value is distinct, as the model wants it (RGB).
RGB = np.arange(1, 19, dtype=np.uint8).reshape(2, 3, 3) * 10
ALPHA = np.full((2, 3, 1), 255, np.uint8)

PACKED = [
    ("Mono8", RGB[..., 0], RGB[..., 0]),
    ("RGB8", RGB, RGB),
    ("BGR8", RGB[..., ::-1], RGB),
    ("RGBa8", np.concatenate([RGB, ALPHA], axis=2), RGB),
    ("BGRa8", np.concatenate([RGB[..., ::-1], ALPHA], axis=2), RGB),
]


@pytest.mark.parametrize(("name", "delivered", "expected"), PACKED, ids=[row[0] for row in PACKED])
def test_packed_formats_become_rgb_or_stay_mono(
    name: str, delivered: np.ndarray, expected: np.ndarray
) -> None:
    out = to_model_input(delivered.ravel(), name, width=3, height=2)
    assert out.dtype == np.uint8 and out.shape == output_shape(name, 3, 2) == expected.shape
    np.testing.assert_array_equal(out, expected)


# SFNC: the top-left 2x2 tile read row by row; R, G, B are channel indices of the RGB image.
R, G, B = 0, 1, 2
BAYER_TILES = {"BayerRG8": ((R, G), (G, B)), "BayerBG8": ((B, G), (G, R)), "BayerGR8": ((G, R), (B, G)),
               "BayerGB8": ((G, B), (R, G))}  # fmt: skip
COLOURS = [(200, 40, 10), (10, 180, 60), (30, 50, 220), (240, 230, 20)]


def known_image() -> np.ndarray:
    """Four 16x16 quadrants of distinct, saturated colours (RGB)."""
    image = np.zeros((32, 32, 3), np.uint8)
    for index, colour in enumerate(COLOURS):
        top, left = 16 * (index // 2), 16 * (index % 2)
        image[top : top + 16, left : left + 16] = colour
    return image


def mosaic(image: np.ndarray, tile: tuple[tuple[int, int], tuple[int, int]]) -> np.ndarray:
    """What a sensor with this colour filter tile records of ``image`` (one byte per pixel)."""
    raw = np.zeros(image.shape[:2], np.uint8)
    for dy in (0, 1):
        for dx in (0, 1):
            raw[dy::2, dx::2] = image[dy::2, dx::2, tile[dy][dx]]
    return raw


@pytest.mark.parametrize("name", sorted(BAYER_TILES))
def test_every_bayer_order_gives_back_the_colours_of_a_known_image(name: str) -> None:
    image = known_image()
    out = to_model_input(mosaic(image, BAYER_TILES[name]).ravel(), name, width=32, height=32)
    assert out.shape == (32, 32, 3)
    for index, colour in enumerate(COLOURS):  # quadrant interiors, away from colour edges
        top, left = 16 * (index // 2), 16 * (index % 2)
        inner = out[top + 3 : top + 13, left + 3 : left + 13].reshape(-1, 3).astype(int)
        assert np.abs(inner - colour).max() <= 1, (name, colour, inner[0])


def test_the_wrong_bayer_order_swaps_red_and_blue() -> None:
    """The table is not symmetric by accident: reading RG as BG gives blue for red."""
    raw = mosaic(known_image(), BAYER_TILES["BayerRG8"])
    right = to_model_input(raw.ravel(), "BayerRG8", 32, 32)
    wrong = to_model_input(raw.ravel(), "BayerBG8", 32, 32)
    np.testing.assert_array_equal(wrong[8, 8], right[8, 8][::-1])


def test_rows_with_padding_are_read_without_it() -> None:
    padded = np.zeros((2, 3 * 3 + 5), np.uint8)  # 5 padding bytes after each RGB8 row
    padded[:, :9] = RGB.reshape(2, 9)
    np.testing.assert_array_equal(to_model_input(padded.ravel(), "RGB8", 3, 2, x_padding=5), RGB)
    np.testing.assert_array_equal(  # a producer may leave out the last row's padding
        to_model_input(padded.ravel()[:-5], "RGB8", 3, 2, x_padding=5), RGB
    )


def test_bytes_after_the_rows_are_not_taken_for_row_padding() -> None:
    """Chunk data after the image must not shift the rows (a stride guessed from the size would)."""
    delivered = np.concatenate([RGB.ravel(), np.full(7, 99, np.uint8)])  # 7 trailing chunk bytes
    np.testing.assert_array_equal(to_model_input(delivered, "RGB8", 3, 2), RGB)
    mono = np.concatenate([RGB[..., 0].ravel(), np.full(3, 99, np.uint8)])
    np.testing.assert_array_equal(to_model_input(mono, "Mono8", 3, 2), RGB[..., 0])


def test_a_buffer_too_small_for_its_padded_rows_is_refused() -> None:
    with pytest.raises(SourceError, match="row padding 5 bytes.* needs 23 bytes, the buffer holds 22"):
        to_model_input(np.zeros(22, np.uint8), "RGB8", 3, 2, x_padding=5)


def test_conversion_writes_into_the_given_array_and_owns_its_pixels() -> None:
    delivered = RGB[..., ::-1].copy()
    out = np.zeros((2, 3, 3), np.uint8)
    result = to_model_input(delivered.ravel(), "BGR8", 3, 2, out=out)
    assert result is out
    delivered[:] = 0  # the driver reuses its buffer
    np.testing.assert_array_equal(out, RGB)
    with pytest.raises(ValueError, match="shape"):
        to_model_input(delivered.ravel(), "BGR8", 3, 2, out=np.zeros((2, 3), np.uint8))


def test_an_unsupported_format_is_an_error_naming_it_and_the_supported_ones() -> None:
    with pytest.raises(SourceError) as error:
        to_model_input(np.zeros(12, np.uint8), "Mono12Packed", 4, 2)
    assert "'Mono12Packed'" in str(error.value) and all(name in str(error.value) for name in SUPPORTED)
    assert "PixelFormat" in error.value.fix


def test_a_short_buffer_is_an_error_with_the_sizes() -> None:
    with pytest.raises(SourceError, match="needs 18 bytes, the buffer holds 17"):
        to_model_input(np.zeros(17, np.uint8), "RGB8", 3, 2)


def test_the_table_covers_the_formats_the_issue_names() -> None:
    assert {"Mono8", "RGB8", "BGR8", "RGBa8", "BayerRG8", "BayerBG8", "BayerGR8", "BayerGB8"} <= set(
        PIXEL_FORMATS
    )
