"""What ``inp-edge listen`` does with each message, and how it prints it (no sockets here).

``ListenSession`` tracks each station's seqs, reports gaps and restarts, recovers missed verdicts
from the control socket, saves overlays; ``listen`` drives it from a ``Listener``. The ``format_*``
functions are the one-line texts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.errors import InpEdgeError
from edge.publish.messages import (
    GAP,
    HEARTBEAT,
    OVERLAY,
    RESTART,
    VERDICT,
    Message,
    MessageError,
    SeqEvent,
    SeqTracker,
)

if TYPE_CHECKING:
    from edge.publish.listen import Listener

RECEIVE_SLICE_S = 0.25  # how often the loop checks its deadline
MAX_REGIONS_SHOWN = 3


@dataclass(frozen=True)
class ListenOptions:
    control: str | None = None  # control endpoint to recover missed verdicts from
    save_overlays: Path | None = None
    count: int | None = None  # stop after this many verdicts
    json: bool = False
    all_heartbeats: bool = False  # else only the first and those whose state changed
    control_timeout_s: float = 2.0
    curve_server_key_file: Path | None = None
    curve_client_key_file: Path | None = None


class ListenSession:
    """What ``inp-edge listen`` does with each message; output through ``emit`` and ``warn``."""

    def __init__(self, options: ListenOptions, emit: Callable[[str], None], warn: Callable[[str], None]):
        self.options = options
        self.emit = emit
        self.warn = warn
        self.verdicts_received = 0
        self._trackers: dict[str, SeqTracker] = {}
        self._heartbeat_state: dict[str, tuple[Any, ...]] = {}

    @property
    def done(self) -> bool:
        return self.options.count is not None and self.verdicts_received >= self.options.count

    def on_message(self, message: Message) -> None:
        tracker = self._trackers.setdefault(message.station, SeqTracker())
        if message.kind == VERDICT:
            self._on_seq_event(message.station, tracker.feed(message.header["seq"]))
            self._show(message.header, format_verdict)
            self.verdicts_received += 1
        elif message.kind == OVERLAY:
            self._save_overlay(message)
        elif message.kind == HEARTBEAT:
            event = tracker.feed_last(message.header["seq_last"])
            if event is not None:
                self._on_seq_event(message.station, event)
            self._on_heartbeat(message)

    def _on_seq_event(self, station: str, event: SeqEvent) -> None:
        if event.kind not in (GAP, RESTART):
            return
        if self.options.json:
            record = {"kind": event.kind, "station": station, "seq": event.seq, "missing": event.missing}
            self.emit(json.dumps(record))
        else:
            self.emit(format_gap(station, event))
        if event.missing is not None and self.options.control is not None:
            self._recover(station, *event.missing)

    def _recover(self, station: str, first: int, last: int) -> None:
        from edge.control import fetch_verdicts

        pages = fetch_verdicts(
            self.options.control, first, last, timeout_s=self.options.control_timeout_s,
            curve_server_key_file=self.options.curve_server_key_file,
            curve_client_key_file=self.options.curve_client_key_file,
        )  # fmt: skip
        try:
            for reply in pages:
                for header in reply.get("verdicts", []):
                    if header.get("station") != station:
                        self.warn(
                            f"control {self.options.control} serves {header.get('station')}, not {station}"
                        )
                        return
                    self._show({**header, "recovered": True}, format_verdict)
                if reply.get("missing"):
                    self._show({"kind": "lost", "station": station, "seqs": reply["missing"]}, format_lost)
        except InpEdgeError as exc:
            self.warn(f"cannot recover {station} seq {first}..{last}: {exc}")

    def _on_heartbeat(self, message: Message) -> None:
        header = message.header
        state = (header.get("state"), header.get("camera_connected"), header.get("model_loaded"))
        changed = self._heartbeat_state.get(message.station) != state
        self._heartbeat_state[message.station] = state
        if changed or self.options.all_heartbeats:
            self._show(header, format_heartbeat)

    def _save_overlay(self, message: Message) -> None:
        if self.options.save_overlays is None or message.jpeg is None:
            return
        from edge.atomic import write_bytes_atomic

        path = self.options.save_overlays / f"{message.station}-{message.header['seq']:08d}.jpg"
        try:
            write_bytes_atomic(path, message.jpeg)
        except OSError as exc:
            self.warn(f"cannot write overlay {path}: {exc}")
            return
        if self.options.json:
            self.emit(json.dumps({**message.header, "saved": str(path)}))
        else:
            self.emit(f"  overlay {message.station} seq={message.header['seq']} saved {path}")

    def _show(self, header: dict[str, Any], text: Callable[[dict[str, Any]], str]) -> None:
        self.emit(json.dumps(header) if self.options.json else text(header))


def listen(listener: Listener, session: ListenSession, *, timeout_s: float | None) -> int:
    """Receive until ``--count`` verdicts or ``timeout_s``; 0, or 1 when the count was not reached."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while not session.done:
        remaining_s = RECEIVE_SLICE_S if deadline is None else deadline - time.monotonic()
        if remaining_s <= 0:
            break
        try:
            message = listener.receive(min(RECEIVE_SLICE_S, remaining_s))
        except MessageError as exc:
            session.warn(f"skipped a message: {exc}")
            continue
        if message is not None:
            session.on_message(message)
    if session.options.count is not None and not session.done:
        session.warn(
            f"{session.verdicts_received} of {session.options.count} verdicts within {timeout_s:g} s"
        )
        return 1
    return 0


def format_verdict(header: Mapping[str, Any]) -> str:
    """``line1 seq=41 frame=1041 FAIL score=1.82 raw=0.0731 regions=1 [...] latency_ms ...``"""
    parts = [
        "recovered:" if header.get("recovered") else "",
        f"{header.get('station')} seq={header.get('seq')} frame={header.get('frame_id')}",
        str(header.get("verdict", "?")).upper(),
    ]
    if header.get("reason"):
        parts.append(f"reason={header['reason']!r}")
    parts.append(f"score={_number(header.get('score'))} raw={_number(header.get('raw_score'))}")
    regions = header.get("regions") or []
    parts.append(f"regions={len(regions)}")
    if regions:
        shown = "; ".join(_region(region) for region in regions[:MAX_REGIONS_SHOWN])
        parts.append(f"[{shown}{'; ...' if len(regions) > MAX_REGIONS_SHOWN else ''}]")
    parts.append(_latency(header))
    return " ".join(part for part in parts if part)


def format_heartbeat(header: Mapping[str, Any]) -> str:
    counters = header.get("counters") or {}
    return (
        f"heartbeat {header.get('station')} state={header.get('state')} "
        f"camera={'connected' if header.get('camera_connected') else 'DISCONNECTED'} "
        f"model={'loaded' if header.get('model_loaded') else 'NOT LOADED'} fps={_number(header.get('fps'))} "
        f"seq_last={header.get('seq_last')}"
        + ("" if not counters else " " + " ".join(f"{name}={count}" for name, count in counters.items()))
    )


def format_gap(station: str, event: SeqEvent) -> str:
    if event.kind == RESTART:
        text = f"RESTART {station}: seq back to {event.seq} (the service restarted)"
        if event.missing is not None:
            text += f"; missed seq {event.missing[0]}..{event.missing[1]} of the new run"
        return text
    first, last = event.missing or (event.seq, event.seq)
    return f"GAP {station}: missed seq {first}..{last} ({last - first + 1} verdicts)"


def format_lost(header: Mapping[str, Any]) -> str:
    seqs = list(header.get("seqs") or [])
    shown = f"{seqs[0]}..{seqs[-1]}" if len(seqs) > 1 else str(seqs[0]) if seqs else "-"
    return f"LOST {header.get('station')}: seq {shown} ({len(seqs)}) no longer held by the control socket"


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"


def _region(region: Mapping[str, Any]) -> str:
    x0, y0, x1, y1 = (round(value) if value is not None else "?" for value in region.get("box", [None] * 4))
    return f"{x0},{y0}-{x1},{y1} {_number(region.get('area_px'))}px² peak {_number(region.get('peak'))}"


def _latency(header: Mapping[str, Any]) -> str:
    stages = [f"{stage}={_number(ms)}" for stage, ms in (header.get("latency_ms") or {}).items()]
    capture_ns, publish_ns = header.get("capture_wall_ns"), header.get("publish_wall_ns")
    if isinstance(capture_ns, int) and isinstance(publish_ns, int):
        stages.append(f"capture->publish={(publish_ns - capture_ns) / 1e6:.1f}")
    return "latency_ms " + " ".join(stages) if stages else ""
