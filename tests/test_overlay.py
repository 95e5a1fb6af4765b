from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.decision import ERROR, FAIL, PASS, Verdict, error_verdict, find_regions
from edge.model.detector import Inference
from edge.model.preprocess import Roi, preprocess_frame
from edge.overlay import OverlayError, OverlayStyle, encode_jpeg, overlay_jpeg, render_overlay

GREY = 120
PIXEL_THRESHOLD = 0.5


def grey_frame(height: int = 480, width: int = 640) -> np.ndarray:
    return np.full((height, width, 3), GREY, np.uint8)


def verdict(kind: str = PASS, regions: tuple = (), reason: str = "") -> Verdict:
    return Verdict(
        frame_id=42, verdict=kind, t_capture_ns=0, wall_time_ns=0, reason=reason,
        score=1.7 if kind == FAIL else 0.2, raw_score=0.6, threshold=0.5, regions=regions,
    )  # fmt: skip


def letterboxed_defect(frame: np.ndarray):
    """A letterboxed ROI, a map with a hot blob in the part and a hot stripe in the padding."""
    _, geometry = preprocess_frame(
        frame, resize_px=256, crop_px=224, roi=Roi(200, 100, 320, 160), fit="letterbox"
    )
    u0, v0, u1, v1 = geometry.valid_box()
    assert v0 > 20, "the letterbox must leave padding rows in the model input"
    anomaly_map = np.zeros((224, 224), np.float32)
    anomaly_map[100:116, 140:160] = 3 * PIXEL_THRESHOLD  # the defect
    anomaly_map[v0 - 12 : v0 - 4, :] = 5 * PIXEL_THRESHOLD  # padding: must never be painted
    return anomaly_map, geometry


def test_output_keeps_the_frame_size_and_the_jpeg_decodes_back():
    frame = grey_frame()
    image = render_overlay(frame, None, None, verdict(), None)
    assert image.shape == (480, 640, 3) and image.dtype == np.uint8
    decoded = cv2.imdecode(np.frombuffer(encode_jpeg(image, 85), np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (480, 640, 3)


def test_large_frame_is_downscaled_to_max_side():
    image = render_overlay(
        grey_frame(1500, 2000), None, None, verdict(), None, OverlayStyle(max_side_px=1024)
    )
    assert image.shape == (768, 1024, 3)


@pytest.mark.parametrize(
    ("kind", "dominant", "others"),
    [(PASS, 1, (0, 2)), (FAIL, 2, (0, 1)), (ERROR, 2, (0,))],  # BGR channel indices; ERROR is orange
)
def test_label_bar_has_the_verdict_colour(kind, dominant, others):
    image = render_overlay(grey_frame(), None, None, verdict(kind), None)
    bar_top = image[:3].reshape(-1, 3).mean(axis=0)
    for other in others:
        assert bar_top[dominant] > bar_top[other] + 100, (kind, bar_top)
    assert not np.array_equal(image[:3], grey_frame()[:3])


def test_label_text_is_drawn_in_the_bar():
    image = render_overlay(grey_frame(), None, None, verdict(FAIL), None)
    bar = image[: round(0.07 * 640)]
    white = np.all(bar > 200, axis=2)
    assert white.sum() > 200  # the verdict word and the details, white on red


def test_heat_lands_on_the_defect_in_frame_coordinates():
    frame = grey_frame()
    anomaly_map, geometry = letterboxed_defect(frame)
    regions = find_regions(anomaly_map, geometry, PIXEL_THRESHOLD, 0.0, 16)
    assert len(regions) == 1  # the padding stripe is outside the valid box
    image = render_overlay(frame, anomaly_map, geometry, verdict(FAIL, regions), PIXEL_THRESHOLD)

    box = geometry.box_to_frame(140, 100, 160, 116)
    cx, cy = round((box.x0 + box.x1) / 2), round((box.y0 + box.y1) / 2)
    centre = image[cy - 2 : cy + 3, cx - 2 : cx + 3].reshape(-1, 3).mean(axis=0)
    assert centre[2] > centre[0] + 30  # hot: red above blue
    assert np.abs(centre - GREY).max() > 30

    roi = geometry.roi
    inside_far = image[roi.y + 10 : roi.y + 30, roi.x + 10 : roi.x + 60]
    assert np.all(inside_far == GREY)  # good area keeps the original image
    outside = image.copy()
    outside[roi.y - 2 : roi.y + roi.height + 2, roi.x - 2 : roi.x + roi.width + 2] = GREY
    assert np.all(outside[60:] == GREY)  # nothing painted outside the ROI (padding stripe included)


def test_contour_and_box_surround_the_defect():
    frame = grey_frame()
    anomaly_map, geometry = letterboxed_defect(frame)
    regions = find_regions(anomaly_map, geometry, PIXEL_THRESHOLD, 0.0, 16)
    image = render_overlay(frame, anomaly_map, geometry, verdict(FAIL, regions), PIXEL_THRESHOLD)
    magenta = (image[:, :, 0] > 180) & (image[:, :, 2] > 180) & (image[:, :, 1] < 100)
    ys, xs = np.nonzero(magenta)
    box = regions[0].box
    assert len(xs) > 20
    assert xs.min() >= box.x0 - 2 and xs.max() <= box.x1 + 2
    assert ys.min() >= box.y0 - 2 and ys.max() <= box.y1 + 2
    white = np.all(image[60:] > 240, axis=2)
    assert white.sum() > 40  # the region box


def test_mono_frame_renders_in_three_channels():
    mono = np.full((500, 600), 90, np.uint8)
    image = render_overlay(mono, None, None, verdict(), None)
    assert image.shape == (500, 600, 3)
    assert np.all(image[100:] == 90)


def test_small_frames_are_enlarged_so_the_label_stays_readable():
    image = render_overlay(grey_frame(128, 128), None, None, verdict(FAIL), None)
    assert image.shape == (480, 480, 3)


def test_rgb_frame_is_shown_in_bgr_order():
    frame = np.zeros((200, 200, 3), np.uint8)
    frame[..., 0] = 255  # red in RGB
    image = render_overlay(frame, None, None, verdict(), None)
    assert tuple(image[150, 100]) == (0, 0, 255)


def test_error_verdict_without_map_shows_label_and_reason():
    error = error_verdict(7, 0, 0, "exception: ValueError: the inspect thread failed on this frame")
    for (height, width), shown in [
        ((480, 640), (480, 640)),
        ((60, 80), (360, 480)),
        ((1000, 300), (1000, 300)),
    ]:
        image = render_overlay(grey_frame(height, width), None, None, error, None)
        assert image.shape == (*shown, 3)
        assert image[0, 0, 2] > 200 and image[0, 0, 0] < 50  # orange bar
        dark_rows = np.all(np.abs(image[:, :4].astype(int) - 40) < 8, axis=(1, 2))
        assert dark_rows.any()  # the reason strip


def test_render_does_not_modify_the_frame():
    frame = grey_frame()
    anomaly_map, geometry = letterboxed_defect(frame)
    before = frame.copy()
    render_overlay(frame, anomaly_map, geometry, verdict(FAIL), PIXEL_THRESHOLD)
    assert np.array_equal(frame, before)


def test_overlay_jpeg_from_an_inference():
    frame = grey_frame()
    anomaly_map, geometry = letterboxed_defect(frame)
    inference = Inference(anomaly_map, 0.6, geometry, None, 1.0, 2.0)
    data = overlay_jpeg(frame, inference, verdict(FAIL), PIXEL_THRESHOLD)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (480, 640, 3)
    assert overlay_jpeg(frame, None, error_verdict(1, 0, 0, "late"), None)[:2] == b"\xff\xd8"


def test_map_without_pixel_threshold_still_shows_heat():
    frame = grey_frame()
    anomaly_map, geometry = letterboxed_defect(frame)
    image = render_overlay(frame, anomaly_map, geometry, verdict(FAIL), None)
    box = geometry.box_to_frame(140, 100, 160, 116)
    cx, cy = round((box.x0 + box.x1) / 2), round((box.y0 + box.y1) / 2)
    assert np.abs(image[cy, cx].astype(int) - GREY).max() > 30


@pytest.mark.parametrize(
    ("image", "quality"),
    [
        (np.zeros((0, 0, 3), np.uint8), 85),
        (np.zeros((8, 8, 3), np.float32), 85),
        (np.zeros((8, 8, 3), np.uint8), 0),
    ],
)
def test_encode_jpeg_refuses_what_it_cannot_encode(image, quality):
    with pytest.raises(OverlayError):
        encode_jpeg(image, quality)


def test_bad_frame_is_an_overlay_error():
    with pytest.raises(OverlayError, match="frame for the overlay"):
        render_overlay(np.zeros((10, 10, 4), np.uint8), None, None, verdict(), None)
