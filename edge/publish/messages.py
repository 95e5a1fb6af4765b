"""Contract 4, schema 1: the ZeroMQ messages of a station, as bytes in and bytes out (pure, no zmq).

A message is multipart ``[topic, JSON header (UTF-8), optional JPEG]``; topics are
``<station>/verdict``, ``<station>/overlay`` (the verdict header with kind "overlay", plus the JPEG)
and ``<station>/heartbeat``. docs/messages.md documents every field. Floats are rounded to
``SIGNIFICANT_DIGITS`` significant digits; NaN and infinity become ``null`` so the JSON is always valid.

``SeqTracker`` is the receiving side's loss detection: verdict ``seq`` is gap-free per service start
(0, 1, 2, ...), so a jump is a loss and a step back is a restart.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from edge.errors import InpEdgeError

if TYPE_CHECKING:
    from edge.decision import Region, Verdict

SCHEMA_VERSION = 1
VERDICT, OVERLAY, HEARTBEAT = "verdict", "overlay", "heartbeat"
KINDS = (VERDICT, OVERLAY, HEARTBEAT)
SIGNIFICANT_DIGITS = 6
STATION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
JPEG_START = b"\xff\xd8"
_MAX_DEPTH = 8
_MAX_ARRAY_ITEMS = 64


class MessageError(InpEdgeError):
    """A message cannot be built or read: bad topic, bad JSON, unknown schema, missing JPEG."""


@dataclass(frozen=True)
class VerdictContext:
    """What a verdict header needs beyond the Verdict itself."""

    station: str
    product: str  # the product name a verdict without its own (station thresholds, errors) carries
    model_id: str
    precision: str
    threshold_source: str = ""  # used when the Verdict carries none


@dataclass(frozen=True)
class Message:
    """One received message."""

    kind: str  # verdict | overlay | heartbeat
    station: str
    header: dict[str, Any]
    jpeg: bytes | None = None  # overlays only

    @property
    def seq(self) -> int | None:
        """The verdict seq (verdict and overlay), or the heartbeat's ``seq_last``."""
        return self.header.get("seq_last" if self.kind == HEARTBEAT else "seq")


def check_station(station: str) -> str:
    if not isinstance(station, str) or not STATION_PATTERN.fullmatch(station):
        raise MessageError(
            f"station name {station!r} cannot be a topic",
            fix="use 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit",
        )
    return station


def topic(station: str, kind: str) -> bytes:
    if kind not in KINDS:
        raise MessageError(f"message kind {kind!r} is not one of {', '.join(KINDS)}")
    return f"{check_station(station)}/{kind}".encode("ascii")


def round_float(value: float | None) -> float | None:
    """``SIGNIFICANT_DIGITS`` significant digits; None for None, NaN and infinity (JSON null)."""
    if value is None:
        return None
    value = float(value)
    if not math.isfinite(value):
        return None
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def json_safe(value: Any, _depth: int = 0) -> Any:
    """A copy of ``value`` that ``json.dumps(allow_nan=False)`` accepts (numpy values included)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return round_float(value)
    if _depth >= _MAX_DEPTH:
        return str(value)
    if isinstance(value, Mapping):
        return {str(key): json_safe(item, _depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(item, _depth + 1) for item in value]
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    if hasattr(value, "dtype") and hasattr(value, "tolist"):  # numpy scalar or array, without numpy
        if getattr(value, "size", 1) > _MAX_ARRAY_ITEMS:
            return f"<array shape {tuple(value.shape)} {value.dtype}>"
        return json_safe(value.tolist(), _depth + 1)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return json_safe(dataclasses.asdict(value), _depth + 1)
    return str(value)  # paths, enums and the like


def iso_utc(wall_ns: int) -> str:
    """ISO-8601 UTC with milliseconds: ``2025-03-01T12:00:00.123Z``."""
    seconds, rest_ns = divmod(int(wall_ns), 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{rest_ns // 1_000_000:03d}Z"


def encode_header(header: Mapping[str, Any]) -> bytes:
    return json.dumps(json_safe(header), allow_nan=False, separators=(",", ":"), ensure_ascii=False).encode()


def _region(region: Region) -> dict[str, Any]:
    box = region.box
    return {
        "box": [round_float(box.x0), round_float(box.y0), round_float(box.x1), round_float(box.y1)],
        "area_px": round_float(region.area_px),
        "peak": round_float(region.peak),
    }


def verdict_header(
    verdict: Verdict, *, seq: int, context: VerdictContext, publish_wall_ns: int
) -> dict[str, Any]:
    """The JSON header of ``<station>/verdict`` (docs/messages.md lists every field)."""
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise MessageError(f"verdict seq {seq!r} is not a whole number >= 0")
    return {
        "schema": SCHEMA_VERSION,
        "kind": VERDICT,
        "station": check_station(context.station),
        "seq": seq,
        "frame_id": int(verdict.frame_id),
        "product": context.product if verdict.product is None else verdict.product,
        "product_version": verdict.product_version,
        "verdict": verdict.verdict,
        "reason": verdict.reason,
        "score": round_float(verdict.score),
        "raw_score": round_float(verdict.raw_score),
        "threshold": round_float(verdict.threshold),
        "threshold_source": verdict.threshold_source or context.threshold_source,
        "regions": [_region(region) for region in verdict.regions],
        "capture_time": iso_utc(verdict.wall_time_ns),
        "capture_wall_ns": int(verdict.wall_time_ns),
        "publish_time": iso_utc(publish_wall_ns),
        "publish_wall_ns": int(publish_wall_ns),
        "latency_ms": {str(stage): round_float(ms) for stage, ms in verdict.latency_ms.items()},
        "model": {"id": context.model_id, "precision": context.precision},
        "frame_meta": json_safe(dict(verdict.frame_meta)),
    }


def verdict_frames(header: Mapping[str, Any]) -> list[bytes]:
    return [topic(header["station"], VERDICT), encode_header({**header, "kind": VERDICT})]


def overlay_frames(header: Mapping[str, Any], jpeg: bytes) -> list[bytes]:
    """The verdict header with kind "overlay", and the overlay JPEG."""
    if not jpeg.startswith(JPEG_START):
        raise MessageError(f"overlay of seq {header.get('seq')} is not a JPEG (no FF D8 start)")
    return [topic(header["station"], OVERLAY), encode_header({**header, "kind": OVERLAY}), bytes(jpeg)]


def heartbeat_header(
    *,
    station: str,
    seq_last: int,
    state: str,
    camera_connected: bool,
    model_loaded: bool,
    fps: float,
    counters: Mapping[str, int],
    extra: Mapping[str, Any] | None,
    wall_ns: int,
) -> dict[str, Any]:
    """The JSON header of ``<station>/heartbeat``; ``seq_last`` is -1 before the first verdict."""
    return {
        "schema": SCHEMA_VERSION,
        "kind": HEARTBEAT,
        "station": check_station(station),
        "seq_last": int(seq_last),
        "state": state,
        "camera_connected": bool(camera_connected),
        "model_loaded": bool(model_loaded),
        "fps": round_float(fps),
        "counters": {str(name): int(count) for name, count in counters.items()},
        "extra": json_safe(dict(extra or {})),
        "time": iso_utc(wall_ns),
        "wall_ns": int(wall_ns),
    }


def heartbeat_frames(header: Mapping[str, Any]) -> list[bytes]:
    return [topic(header["station"], HEARTBEAT), encode_header(header)]


def parse_message(frames: Sequence[bytes]) -> Message:
    """Read ``[topic, header, optional JPEG]``; ``MessageError`` names what is wrong."""
    if len(frames) not in (2, 3):
        raise MessageError(f"message has {len(frames)} frames; expected [topic, JSON header, optional JPEG]")
    station, kind = _parse_topic(bytes(frames[0]))
    header = _parse_header(bytes(frames[1]), station, kind)
    jpeg = bytes(frames[2]) if len(frames) == 3 else None
    if kind == OVERLAY and not (jpeg and jpeg.startswith(JPEG_START)):
        raise MessageError(f"overlay {station} seq {header.get('seq')} carries no JPEG as its third frame")
    if kind != OVERLAY and jpeg is not None:
        raise MessageError(f"{kind} message of {station} has an unexpected third frame")
    return Message(kind, station, header, jpeg)


def _parse_topic(raw: bytes) -> tuple[str, str]:
    text = raw.decode("utf-8", errors="replace")
    station, _, kind = text.rpartition("/")
    if kind not in KINDS or not STATION_PATTERN.fullmatch(station):
        raise MessageError(
            f"topic {text!r} is not <station>/verdict, <station>/overlay or <station>/heartbeat"
        )
    return station, kind


def _parse_header(raw: bytes, station: str, kind: str) -> dict[str, Any]:
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MessageError(f"{station}/{kind} header is not UTF-8 JSON: {exc}") from None
    if not isinstance(header, dict):
        raise MessageError(f"{station}/{kind} header is a JSON {type(header).__name__}, not an object")
    if header.get("schema") != SCHEMA_VERSION:
        raise MessageError(
            f"{station}/{kind} header has schema {header.get('schema')!r}; this reader knows {SCHEMA_VERSION}",
            fix="use a subscriber built for that schema (docs/messages.md, versioning)",
        )
    if header.get("kind") != kind or header.get("station") != station:
        raise MessageError(
            f"header says {header.get('station')!r}/{header.get('kind')!r} but the topic is {station}/{kind}"
        )
    seq_key = "seq_last" if kind == HEARTBEAT else "seq"
    seq = header.get(seq_key)
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise MessageError(f"{station}/{kind} header has no whole-number {seq_key!r}")
    return header


FIRST, IN_ORDER, GAP, RESTART, DUPLICATE = "first", "in-order", "gap", "restart", "duplicate"


@dataclass(frozen=True)
class SeqEvent:
    """What one received seq means for the receiver."""

    kind: str  # first | in-order | gap | restart | duplicate
    seq: int
    missing: tuple[int, int] | None = None  # first and last seq never received (inclusive)


class SeqTracker:
    """Loss and restart detection for one station's verdict seqs, fed in the order received.

    Rules (tests/test_messages.py holds the tables): the first seq seen is where this receiver
    joined (nothing missing); the expected seq is a step in order; a seq above it is a gap; 0 (or
    any step back to a seq not recently seen) is a restart of the service, the seqs before it in
    the new run missing; a recently seen seq is a duplicate and changes nothing. A heartbeat's
    ``seq_last`` reveals a loss at the tail, when no verdict follows to show the gap.
    """

    def __init__(self, *, recent: int = 1024) -> None:
        self.expected: int | None = None
        self._recent: deque[int] = deque(maxlen=recent)
        self._recent_set: set[int] = set()

    def feed(self, seq: int) -> SeqEvent:
        if self.expected is None:
            return self._accept(seq, SeqEvent(FIRST, seq))
        if seq == self.expected:
            return self._accept(seq, SeqEvent(IN_ORDER, seq))
        if seq > self.expected:
            return self._accept(seq, SeqEvent(GAP, seq, (self.expected, seq - 1)))
        if seq != 0 and seq in self._recent_set:
            return SeqEvent(DUPLICATE, seq)
        self._forget()
        return self._accept(seq, SeqEvent(RESTART, seq, (0, seq - 1) if seq > 0 else None))

    def feed_last(self, seq_last: int) -> SeqEvent | None:
        """A heartbeat's ``seq_last`` (-1: none yet); an event only for a gap or a restart."""
        if self.expected is None or seq_last == self.expected - 1:
            self.expected = seq_last + 1
            return None
        if seq_last >= self.expected:
            event = SeqEvent(GAP, seq_last, (self.expected, seq_last))
        else:
            self._forget()
            event = SeqEvent(RESTART, seq_last, (0, seq_last) if seq_last >= 0 else None)
        self.expected = seq_last + 1
        return event

    def _accept(self, seq: int, event: SeqEvent) -> SeqEvent:
        self.expected = seq + 1
        if len(self._recent) == self._recent.maxlen:
            self._recent_set.discard(self._recent[0])
        self._recent.append(seq)
        self._recent_set.add(seq)
        return event

    def _forget(self) -> None:
        self._recent.clear()
        self._recent_set.clear()
