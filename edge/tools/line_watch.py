"""Watch a station like a PLC gateway would: every verdict live, gaps filled from the control socket.

``watch_line`` subscribes to the station's verdicts, prints one line each, and whenever a seq is
missing (PUB/SUB drops silently, e.g. before the subscription is up) fetches it from the control
socket while the service still runs. It returns the tally (edge/tools/line_report.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from edge.control import fetch_verdicts
from edge.errors import InpEdgeError
from edge.publish.listen import Listener
from edge.publish.listen_session import format_verdict
from edge.publish.messages import VERDICT
from edge.tools.line_report import LineReport, LineTally


def watch_line(
    publish_endpoint: str,
    control_endpoint: str,
    *,
    parts: int,
    finished: Callable[[], bool],
    emit: Callable[[str], None] = print,
    format_line: Callable[[dict], str] = format_verdict,
    timeout_s: float = 600.0,
) -> LineReport:
    """Until ``parts`` verdicts are accounted for, or ``finished()`` and nothing more arrives."""
    tally = LineTally()
    deadline = time.monotonic() + timeout_s
    with Listener(publish_endpoint, kinds=(VERDICT,)) as listener:
        quiet_since: float | None = None
        expected = 0  # the next seq in order
        while len(tally.headers) < parts and time.monotonic() < deadline:
            message = listener.receive(0.2)
            if message is None:
                if finished():
                    quiet_since = quiet_since or time.monotonic()
                    if time.monotonic() - quiet_since > 1.0:
                        break
                continue
            quiet_since = None
            seq = int(message.header["seq"])
            if seq > expected:  # a gap (the first message too: the line starts at seq 0)
                _recover(control_endpoint, expected, seq - 1, tally, emit, format_line)
            expected = max(expected, seq + 1)
            if tally.add(message.header, time.time_ns()):
                emit(format_line(message.header))
    return tally.report()


def _recover(
    endpoint: str, first: int, last: int, tally: LineTally, emit: Callable[[str], None],
    format_line: Callable[[dict], str],
) -> None:  # fmt: skip
    try:
        for reply in fetch_verdicts(endpoint, first, last):
            for header in reply.get("verdicts", []):
                if tally.add(header, None):
                    emit(format_line({**header, "recovered": True}))
    except InpEdgeError as exc:
        emit(f"cannot recover seq {first}..{last}: {exc}")
