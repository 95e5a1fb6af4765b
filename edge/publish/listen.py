"""``inp-edge listen``: the reference subscriber, and ``Listener``, the SUB socket behind it.

The publisher binds and the listener connects, so a listener may start before or after the service
and survives its restarts (ZeroMQ reconnects on its own). Loss shows in the verdict ``seq``
(``SeqTracker``); with ``--control`` the missed verdicts are fetched from the station's control
socket and printed marked "recovered". zmq is imported inside the functions that need it.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from edge.cli import Command, say
from edge.errors import PublishError
from edge.publish.listen_session import ListenOptions, ListenSession, listen
from edge.publish.messages import HEARTBEAT, KINDS, VERDICT, Message, check_station, parse_message

RCV_HWM_MESSAGES = 1000


class Listener:
    """A SUB socket connected to one publisher (context manager; use it from one thread)."""

    def __init__(
        self,
        endpoint: str,
        *,
        station: str | None = None,
        kinds: Sequence[str] = KINDS,
        curve_server_key_file: Path | None = None,
        curve_client_key_file: Path | None = None,
        rcv_hwm_messages: int = RCV_HWM_MESSAGES,
    ) -> None:
        self.endpoint = endpoint
        self.station = check_station(station) if station is not None else None
        self.kinds = tuple(kinds)
        self._curve = (curve_server_key_file, curve_client_key_file)
        self._rcv_hwm = rcv_hwm_messages
        self._context: Any = None
        self._socket: Any = None

    def __enter__(self) -> Listener:
        import zmq

        from edge.publish.zmq_publisher import HEARTBEAT_IVL_MS, HEARTBEAT_TIMEOUT_MS

        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.SUB)
        self._socket.linger = 0
        self._socket.rcvhwm = self._rcv_hwm
        self._socket.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_IVL_MS)
        self._socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)
        try:
            if self._curve[0] is not None:
                from edge.publish.curve import make_client

                make_client(self._socket, self._curve[0], self._curve[1], role="listen")
            for prefix in self._prefixes():
                self._socket.subscribe(prefix)
            self._socket.connect(self.endpoint)
        except (zmq.ZMQError, PublishError) as exc:
            self.close()
            if isinstance(exc, PublishError):
                raise
            raise PublishError(
                f"cannot connect to the publisher at {self.endpoint!r}: {exc}",
                fix="write it as tcp://HOST:PORT or ipc:///PATH (the station's publish endpoint)",
            ) from None
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None
        if self._context is not None:
            self._context.term()
            self._context = None

    def receive(self, timeout_s: float) -> Message | None:
        """The next wanted message, None after ``timeout_s``; MessageError for a malformed one."""
        if self._socket is None:
            raise PublishError(
                f"listener of {self.endpoint} is not open", fix="use it as `with Listener(...)`"
            )
        deadline = time.monotonic() + timeout_s
        while True:
            remaining_ms = max(0, int((deadline - time.monotonic()) * 1000))
            if not self._socket.poll(remaining_ms):
                return None
            message = parse_message(self._socket.recv_multipart())
            if message.kind in self.kinds:
                return message

    def _prefixes(self) -> list[str]:
        if self.station is None:
            return [""]  # kinds are filtered here, after receiving
        return [f"{self.station}/{kind}" for kind in self.kinds]


DESCRIPTION = """\
Subscribe to a station's messages and print one line per verdict, e.g.

  line1 seq=41 frame=1041 FAIL score=1.821 raw=0.07311 regions=1 [312,88-356,131 1420px² peak 0.1121]
  latency_ms queue_ms=0.4 preprocess_ms=3.1 model_ms=21.4 decide_ms=0.8 ... capture->publish=27.9   (one line)

score is normalised (0 a typical good part, above 1 fails); boxes are in frame pixels.
Heartbeats (one a second) are summarised: the first, then whenever the state, the camera or the
model changes (--all-heartbeats: every one). The publisher binds and this command connects, so it may
start before the service, and it keeps listening across the service's restarts.

Loss: PUB/SUB drops messages silently when a subscriber falls behind, so every verdict carries a seq,
gap-free per service start. A jump is reported as GAP (seq back to 0: RESTART); a heartbeat's
seq_last also reveals loss at the tail. With --control, the missed verdicts are fetched from the
station's control socket and printed marked "recovered"; those it no longer holds are reported LOST.

Exit status: 0, or 1 when --count verdicts did not arrive within --timeout-s.
Schema and topics: docs/messages.md.
"""


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("endpoint", help="the station's publish endpoint, e.g. tcp://10.0.0.5:5570")
    parser.add_argument("--station", metavar="NAME", help="only this station (default: every station)")
    parser.add_argument(
        "--control",
        metavar="ENDPOINT",
        help="the station's control endpoint, e.g. tcp://127.0.0.1:5571: recover missed verdicts from it",
    )
    parser.add_argument(
        "--save-overlays", metavar="DIR", type=Path, help="write overlay JPEGs here as STATION-SEQ.jpg"
    )
    parser.add_argument("--count", metavar="N", type=_positive(int), help="stop after N verdicts")
    parser.add_argument("--timeout-s", metavar="S", type=_positive(float), help="stop after S seconds")
    parser.add_argument("--json", action="store_true", help="print each header as one JSON line")
    parser.add_argument("--all-heartbeats", action="store_true", help="print every heartbeat")
    parser.add_argument(
        "--curve-server-key", metavar="FILE", type=Path, help="the station's public CURVE key (.key): encrypt"
    )
    parser.add_argument(
        "--curve-client-key", metavar="FILE", type=Path, help="this client's .key_secret (default: a new one)"
    )


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text} is not above 0")
        return value

    return parse


def _run(args: argparse.Namespace) -> int:
    options = ListenOptions(
        control=args.control,
        save_overlays=args.save_overlays,
        count=args.count,
        json=args.json,
        all_heartbeats=args.all_heartbeats,
        curve_server_key_file=args.curve_server_key,
        curve_client_key_file=args.curve_client_key,
    )
    kinds = KINDS if args.save_overlays is not None else (VERDICT, HEARTBEAT)
    listener = Listener(
        args.endpoint,
        station=args.station,
        kinds=kinds,
        curve_server_key_file=args.curve_server_key,
        curve_client_key_file=args.curve_client_key,
    )
    session = ListenSession(options, emit=_print, warn=partial(say, "listen"))
    with listener:
        say(
            "listen", f"listening to {args.endpoint}" + (f" (station {args.station})" if args.station else "")
        )
        return listen(listener, session, timeout_s=args.timeout_s)


def _print(line: str) -> None:
    print(line, flush=True)


COMMAND = Command(
    name="listen",
    help="subscribe to a station's verdicts and heartbeats; report and recover lost verdicts",
    description=DESCRIPTION,
    add_arguments=_add_arguments,
    run=_run,
)
