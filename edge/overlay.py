"""The overlay a line monitor shows for one part: the frame, the anomaly heat, the defects, the verdict.

- The frame (RGB or mono) is downscaled first when its longer side exceeds ``max_side_px``; every
  frame coordinate below is scaled with it.
- The anomaly map (model-input pixels) is warped into its place in the frame through ``Geometry``
  (the inverse of the crop, the resize and the ROI), only inside the ROI and only from the part of
  the map that shows the ROI (letterbox padding is never painted). Its colour is the JET colormap of
  ``value / pixel_threshold``, with the threshold at ``threshold_position`` of the scale, so a defect
  pixel is clearly hot (yellow to red); it is blended with ``alpha`` only where the map reaches
  ``heat_floor`` × the threshold, so good areas keep the original image.
- The contour of ``map > pixel_threshold`` and the verdict's defect boxes are drawn in colours that
  JET never uses; the ROI is a thin grey rectangle.
- A bar at the top says the verdict in big text on its colour (PASS green, FAIL red, ERROR orange),
  with the normalised score, the raw threshold and the frame id; an ERROR adds a strip with its
  reason. Text sizes follow the image size, so the label reads the same on small and large frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from edge.decision import ERROR, FAIL, PASS, Verdict
from edge.errors import InpEdgeError
from edge.model.preprocess import Geometry

if TYPE_CHECKING:
    from edge.model.detector import Inference

FONT = cv2.FONT_HERSHEY_SIMPLEX
MIN_FONT_SCALE = 0.35  # below this HERSHEY_SIMPLEX is no longer readable; long text is cut instead
BGR = tuple[int, int, int]


class OverlayError(InpEdgeError):
    """An overlay image cannot be drawn or encoded."""


@dataclass(frozen=True)
class OverlayStyle:
    alpha: float = 0.45  # weight of the heat colour where it is shown
    jpeg_quality: int = 85
    max_side_px: int = 1024  # larger frames are downscaled before drawing
    min_side_px: int = 480  # smaller frames are enlarged first, so the label stays readable on a monitor
    threshold_position: float = 0.67  # where the pixel threshold sits on the 0..1 colour scale
    # fraction of the pixel threshold below which the frame is left untouched: normal surfaces often
    # sit at 80-90 % of the threshold, so a lower floor tints the whole part
    heat_floor: float = 0.9
    bar_fraction: float = 0.07  # label bar height as a fraction of the longer image side
    contour_bgr: BGR = (255, 0, 255)  # magenta: not a JET colour
    box_bgr: BGR = (255, 255, 255)
    roi_bgr: BGR = (160, 160, 160)
    pass_bgr: BGR = (0, 160, 0)
    fail_bgr: BGR = (0, 0, 210)
    error_bgr: BGR = (0, 140, 255)
    reason_bgr: BGR = (40, 40, 40)


def overlay_jpeg(
    frame_image: np.ndarray,
    inference: Inference | None,
    verdict: Verdict,
    pixel_threshold: float | None,
    style: OverlayStyle = OverlayStyle(),
) -> bytes:
    """The overlay of one part as JPEG bytes (no inference: the frame and the label only)."""
    anomaly_map = None if inference is None else inference.anomaly_map
    geometry = None if inference is None else inference.geometry
    bgr = render_overlay(frame_image, anomaly_map, geometry, verdict, pixel_threshold, style)
    return encode_jpeg(bgr, style.jpeg_quality)


def encode_jpeg(bgr: np.ndarray, quality: int) -> bytes:
    """A BGR (or mono) uint8 image → JPEG bytes; OverlayError when OpenCV cannot encode it."""
    if not 1 <= int(quality) <= 100:
        raise OverlayError(f"JPEG quality {quality} is outside 1..100", fix="set jpeg_quality to 1..100")
    if not isinstance(bgr, np.ndarray) or bgr.dtype != np.uint8 or bgr.size == 0:
        kind = f"{bgr.dtype} {bgr.shape}" if isinstance(bgr, np.ndarray) else type(bgr).__name__
        raise OverlayError(f"overlay image cannot be JPEG-encoded: {kind}; expected non-empty uint8 H×W×3")
    try:
        ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    except cv2.error as error:
        raise OverlayError(f"OpenCV failed to JPEG-encode a {bgr.shape} overlay: {error}") from error
    if not ok:
        raise OverlayError(f"OpenCV failed to JPEG-encode a {bgr.shape} overlay (imencode returned false)")
    return encoded.tobytes()


def render_overlay(
    frame_image: np.ndarray,
    anomaly_map: np.ndarray | None,
    geometry: Geometry | None,
    verdict: Verdict,
    pixel_threshold: float | None,
    style: OverlayStyle = OverlayStyle(),
) -> np.ndarray:
    """The overlay as a BGR uint8 image of the frame's size (or downscaled to ``max_side_px``)."""
    canvas, scale = _frame_canvas(frame_image, style.max_side_px, style.min_side_px)
    line_px = max(1, round(max(canvas.shape[:2]) / 400))
    if anomaly_map is not None and geometry is not None:
        _paint_heat(canvas, anomaly_map, geometry, pixel_threshold, scale, style)
        if pixel_threshold is not None:
            _draw_contours(canvas, anomaly_map, geometry, pixel_threshold, scale, style, line_px)
    if geometry is not None:
        r = geometry.roi
        corners = _scaled((r.x, r.y, r.x + r.width, r.y + r.height), scale)
        cv2.rectangle(canvas, corners[:2], _inclusive(corners[2:]), style.roi_bgr, 1)
    margin = 2 * line_px  # boxes sit just outside their region, so the contour inside stays visible
    for region in verdict.regions:
        x0, y0, x1, y1 = _scaled((region.box.x0, region.box.y0, region.box.x1, region.box.y1), scale)
        cv2.rectangle(
            canvas, (x0 - margin, y0 - margin), (x1 + margin - 1, y1 + margin - 1), style.box_bgr, line_px
        )
    _draw_label(canvas, verdict, style)
    return canvas


def _frame_canvas(
    frame_image: np.ndarray, max_side_px: int, min_side_px: int = 0
) -> tuple[np.ndarray, float]:
    """The frame as a new BGR uint8 image (resized into [min_side_px, max_side_px]) and the scale applied."""
    image = frame_image
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3):
        kind = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise OverlayError(f"frame for the overlay must be uint8 H×W or H×W×3 RGB, got {kind}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if (image.ndim == 3 and image.shape[2] != 3) or image.size == 0:
        raise OverlayError(f"frame for the overlay has shape {image.shape}; expected H×W or H×W×3 RGB")
    height, width = image.shape[:2]
    scale = min(1.0, max_side_px / max(height, width))
    if min_side_px and max(height, width) < min_side_px:
        scale = min_side_px / max(height, width)
    if scale != 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    code = cv2.COLOR_GRAY2BGR if image.ndim == 2 else cv2.COLOR_RGB2BGR
    return cv2.cvtColor(image, code), scale


def _affine(geometry: Geometry, scale: float) -> np.ndarray:
    """2×3 matrix: model-input pixel index (i, j) → canvas pixel index, pixel centres matched."""
    g = geometry
    a_x, a_y = scale / g.scale_x, scale / g.scale_y
    b_x = scale * ((g.crop_left - g.pad_x) / g.scale_x + g.roi.x)
    b_y = scale * ((g.crop_top - g.pad_y) / g.scale_y + g.roi.y)
    return np.array([[a_x, 0.0, 0.5 * a_x + b_x - 0.5], [0.0, a_y, 0.5 * a_y + b_y - 0.5]], np.float64)


def _heat_reference(anomaly_map: np.ndarray, pixel_threshold: float | None) -> float | None:
    """The map value shown at ``threshold_position``: the pixel threshold, else the map's peak."""
    if pixel_threshold is not None and math.isfinite(pixel_threshold) and pixel_threshold > 0:
        return float(pixel_threshold)
    peak = float(np.nanmax(anomaly_map)) if anomaly_map.size else 0.0
    return peak if math.isfinite(peak) and peak > 0 else None


def _paint_heat(
    canvas: np.ndarray,
    anomaly_map: np.ndarray,
    geometry: Geometry,
    pixel_threshold: float | None,
    scale: float,
    style: OverlayStyle,
) -> None:
    u0, v0, u1, v1 = geometry.valid_box()
    reference = _heat_reference(anomaly_map[v0:v1, u0:u1], pixel_threshold)  # padding never sets the scale
    x0, y0, x1, y1 = _roi_on_canvas(geometry, scale, canvas.shape[:2])
    if reference is None or x1 <= x0 or y1 <= y0:
        return
    gain = style.threshold_position * 255.0 / reference
    level = np.zeros(anomaly_map.shape, np.uint8)
    shown = np.nan_to_num(anomaly_map[v0:v1, u0:u1].astype(np.float32) * gain, nan=255.0)
    level[v0:v1, u0:u1] = np.clip(shown, 0, 255)
    matrix = _affine(geometry, scale)
    matrix[:, 2] -= (x0, y0)
    warped = cv2.warpAffine(level, matrix, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderValue=0)
    floor_level = max(1, math.ceil(style.heat_floor * style.threshold_position * 255.0))
    _, visible = cv2.threshold(warped, floor_level - 1, 255, cv2.THRESH_BINARY)
    if cv2.countNonZero(visible) == 0:
        return
    region = canvas[y0:y1, x0:x1]
    heat = cv2.applyColorMap(warped, cv2.COLORMAP_JET)
    blended = cv2.addWeighted(region, 1.0 - style.alpha, heat, style.alpha, 0)
    cv2.copyTo(blended, visible, region)  # in place: region is a view of the canvas


def _draw_contours(
    canvas: np.ndarray,
    anomaly_map: np.ndarray,
    geometry: Geometry,
    pixel_threshold: float,
    scale: float,
    style: OverlayStyle,
    line_px: int,
) -> None:
    u0, v0, u1, v1 = geometry.valid_box()
    above = np.zeros(anomaly_map.shape, np.uint8)
    above[v0:v1, u0:u1] = anomaly_map[v0:v1, u0:u1] > pixel_threshold
    contours, _ = cv2.findContours(above, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return
    matrix = _affine(geometry, scale)
    on_canvas = [np.round(cv2.transform(c.astype(np.float64), matrix)).astype(np.int32) for c in contours]
    cv2.drawContours(canvas, on_canvas, -1, style.contour_bgr, line_px, lineType=cv2.LINE_AA)


def _roi_on_canvas(geometry: Geometry, scale: float, canvas_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    r = geometry.roi
    height, width = canvas_hw
    x0, y0 = max(0, math.floor(r.x * scale)), max(0, math.floor(r.y * scale))
    x1 = min(width, math.ceil((r.x + r.width) * scale))
    y1 = min(height, math.ceil((r.y + r.height) * scale))
    return x0, y0, x1, y1


def _scaled(box: tuple[float, float, float, float], scale: float) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = (round(value * scale) for value in box)
    return x0, y0, x1, y1


def _inclusive(corner: tuple[int, int]) -> tuple[int, int]:
    """cv2.rectangle's second corner is inclusive; boxes here end exclusive."""
    return corner[0] - 1, corner[1] - 1


# --- the label -------------------------------------------------------------------------------------


def _verdict_colours(verdict: str, style: OverlayStyle) -> tuple[BGR, BGR]:
    """(background, text) colours of the label bar."""
    if verdict == PASS:
        return style.pass_bgr, (255, 255, 255)
    if verdict == FAIL:
        return style.fail_bgr, (255, 255, 255)
    if verdict == ERROR:
        return style.error_bgr, (0, 0, 0)
    return (128, 128, 128), (255, 255, 255)


def _detail_lines(verdict: Verdict) -> tuple[str, str]:
    score = "score --" if verdict.score is None else f"score {verdict.score:.2f} / 1.00"
    threshold = "" if verdict.threshold is None else f"  thr {verdict.threshold:.4g}"
    return score + threshold, f"frame {verdict.frame_id}"


def _draw_label(canvas: np.ndarray, verdict: Verdict, style: OverlayStyle) -> None:
    height, width = canvas.shape[:2]
    bar_h = min(height, max(28, round(style.bar_fraction * max(height, width))))
    background, ink = _verdict_colours(verdict.verdict, style)
    canvas[:bar_h] = background
    pad = max(2, round(0.15 * bar_h))
    word = verdict.verdict.upper()
    word_scale = _fit_scale(word, 0.75 * bar_h, 0.45 * width)
    word_end = _put(canvas, word, (pad, bar_h - pad), word_scale, ink)
    _draw_details(canvas, _detail_lines(verdict), word_end + 2 * pad, bar_h, pad, ink)
    if verdict.reason:
        _draw_reason(canvas, f"reason: {verdict.reason}", bar_h, pad, style)


def _draw_details(
    canvas: np.ndarray, lines: tuple[str, str], left: int, bar_h: int, pad: int, ink: BGR
) -> None:
    """Two small lines right of the verdict word; cut short (or left out) on narrow frames."""
    room = canvas.shape[1] - left - pad
    scale = max(MIN_FONT_SCALE, min(_fit_scale(line, 0.36 * bar_h, room) for line in lines))
    if room < _text_width("0...", scale):
        return
    _put(canvas, _cut_to_width(lines[0], scale, room), (left, bar_h // 2 - 1), scale, ink)
    _put(canvas, _cut_to_width(lines[1], scale, room), (left, bar_h - pad), scale, ink)


def _draw_reason(canvas: np.ndarray, text: str, top: int, pad: int, style: OverlayStyle) -> None:
    height, width = canvas.shape[:2]
    strip_h = min(height - top, max(12, round(0.6 * top)))
    if strip_h <= 0:
        return
    canvas[top : top + strip_h] = style.reason_bgr
    scale = max(MIN_FONT_SCALE, _fit_scale(text, 0.7 * strip_h, 10**9))
    text = _cut_to_width(text, scale, width - 2 * pad)
    _put(canvas, text, (pad, top + strip_h - max(2, round(0.25 * strip_h))), scale, (255, 255, 255))


def _cut_to_width(text: str, scale: float, max_w: int) -> str:
    """``text``, cut and ended with "..." when it is wider than ``max_w`` pixels at ``scale``."""
    if _text_width(text, scale) <= max_w:
        return text
    while len(text) > 1 and _text_width(text + "...", scale) > max_w:
        text = text[:-1]
    return text + "..."


def _thickness(scale: float) -> int:
    return max(1, round(1.6 * scale))


def _text_width(text: str, scale: float) -> int:
    (text_w, _), _ = cv2.getTextSize(text, FONT, scale, _thickness(scale))
    return text_w


def _fit_scale(text: str, max_h: float, max_w: float) -> float:
    """The font scale at which ``text`` (capitals and half the descenders) fits max_h × max_w pixels."""
    (text_w, text_h), baseline = cv2.getTextSize(text, FONT, 1.0, 2)
    return max(0.0, min(max_h / (text_h + 0.5 * baseline), max_w / max(1, text_w)))


def _put(canvas: np.ndarray, text: str, origin: tuple[int, int], scale: float, ink: BGR) -> int:
    """Draw ``text`` with its baseline at ``origin``; return the x where it ends."""
    cv2.putText(canvas, text, origin, FONT, scale, ink, _thickness(scale), cv2.LINE_AA)
    return origin[0] + _text_width(text, scale)
