"""The station's request / reply socket: JSON requests in, JSON replies out, one owner thread.

A request is one JSON object ``{"cmd": "...", ...}``; the reply is ``{"ok": true, ...}`` or
``{"ok": false, "error": "...", "fix": "..."}``, always, so a bad request never stalls a client.
Built in: ``ping``, ``status``, ``verdicts`` (recover missed verdicts by seq from ``VerdictRing``)
and ``help``; more commands come in through ``handlers``. Handlers run on the control thread, so
what they read (status, products) must be safe to read from there.

The socket is local by default (127.0.0.1); a non-local tcp address needs CURVE or an explicit
``allow_remote=True``. docs/messages.md documents every command.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from edge.config_schema import DEFAULTS
from edge.config_values import parse_endpoint
from edge.control_args import RequestError, whole_arg
from edge.errors import ConfigError, InpEdgeError, PublishError
from edge.publish.messages import encode_header, iso_utc
from edge.publish.sockets import SocketOwner, bind_secured

log = logging.getLogger(__name__)

DEFAULT_CONTROL_ENDPOINT = "tcp://127.0.0.1:5571"
DEFAULT_RING_CAPACITY = DEFAULTS["control.ring_size"]  # verdict headers kept for recovery (~1 kB each)
MAX_VERDICTS_PER_REQUEST = 500
MAX_REQUEST_BYTES = 65536
POLL_MS = 100  # close() returns within about this

Handler = Callable[[dict[str, Any]], Mapping[str, Any]]


class ControlError(InpEdgeError):
    """A control request could not be made: no reply in time, a bad endpoint, a reply that is not JSON."""


def is_local_endpoint(endpoint: str) -> bool:
    """Whether only this machine can reach ``endpoint`` (ipc, inproc, tcp on loopback)."""
    parsed = parse_endpoint(endpoint)
    return parsed is not None and parsed.is_local()


def client_endpoint(endpoint: str) -> str:
    """Where a client on this machine connects for a bound endpoint (``*`` / 0.0.0.0 → 127.0.0.1)."""
    for wildcard in ("://*:", "://0.0.0.0:"):
        endpoint = endpoint.replace(wildcard, "://127.0.0.1:")
    return endpoint


class VerdictRing:
    """The last ``capacity`` verdict headers by seq (thread-safe), kept as their JSON bytes."""

    def __init__(self, capacity: int = DEFAULT_RING_CAPACITY) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._items: OrderedDict[int, bytes] = OrderedDict()

    def add(self, seq: int, encoded: bytes) -> None:
        """Keep the verdict header of ``seq`` as the JSON bytes that were sent."""
        with self._lock:
            self._items.pop(seq, None)
            self._items[seq] = encoded
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def get(self, from_seq: int, to_seq: int) -> tuple[list[dict[str, Any]], list[int]]:
        """The headers held for ``from_seq..to_seq`` (inclusive) and the seqs no longer held."""
        with self._lock:
            found = [(seq, self._items.get(seq)) for seq in range(from_seq, to_seq + 1)]
        headers = [json.loads(raw) for _, raw in found if raw is not None]
        return headers, [seq for seq, raw in found if raw is None]

    def span(self) -> tuple[int, int] | None:
        """(oldest, newest) seq held, or None when empty."""
        with self._lock:
            if not self._items:
                return None
            return next(iter(self._items)), next(reversed(self._items))

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


class ControlServer(SocketOwner):
    """The REP socket (context manager); ``handle`` is the socket-free core."""

    def __init__(
        self,
        endpoint: str = DEFAULT_CONTROL_ENDPOINT,
        *,
        ring: VerdictRing | None = None,
        status: Callable[[], Mapping[str, Any]] | None = None,
        handlers: Mapping[str, Handler] | None = None,
        max_verdicts_per_request: int = MAX_VERDICTS_PER_REQUEST,
        allow_remote: bool = False,
        curve_secret_key_file: Any = None,
        curve_clients_dir: Any = None,
    ) -> None:
        if not (is_local_endpoint(endpoint) or curve_secret_key_file is not None or allow_remote):
            raise ConfigError(
                f"control endpoint {endpoint!r} is reachable from other machines and has no CURVE key",
                fix="bind it to 127.0.0.1 or ipc://, give it a CURVE secret key, or allow remote access "
                "explicitly (allow_remote)",
            )
        self.endpoint = endpoint
        self.bound_endpoint: str | None = None
        self.ring = ring if ring is not None else VerdictRing()
        self._status = status
        self._max_verdicts = max_verdicts_per_request
        self._curve = (curve_secret_key_file, curve_clients_dir)
        self._handlers: dict[str, Handler] = {
            "ping": self._ping,
            "status": self._status_command,
            "verdicts": self._verdicts,
            "help": self._help,
        }
        for name, handler in (handlers or {}).items():
            if name in self._handlers:
                raise ConfigError(f"control command {name!r} is built in and cannot be replaced")
            self._handlers[name] = handler
        self._stop = threading.Event()
        self._start_owner(f"control {endpoint}")

    def close(self, timeout_s: float = 1.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def handle(self, raw: bytes) -> dict[str, Any]:
        """The reply to one raw request (never raises for a bad request or a failing handler)."""
        try:
            request = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return _error(f"request is not UTF-8 JSON: {exc}", 'send one JSON object such as {"cmd": "help"}')
        if not isinstance(request, dict):
            return _error(
                f"request is a JSON {type(request).__name__}", 'send an object such as {"cmd": "help"}'
            )
        command = request.get("cmd")
        handler = self._handlers.get(command) if isinstance(command, str) else None
        if handler is None:
            return _error(f"unknown command {command!r}", f"use one of: {', '.join(self._handlers)}")
        try:
            result = handler(request)
        except InpEdgeError as exc:
            return _error(exc.message, exc.fix)
        except Exception as exc:  # a bug in a handler: reply, keep serving, keep the traceback in the log
            log.exception("control %s: command %s failed", self.bound_endpoint, command)
            return _error(f"{command} failed: {type(exc).__name__}: {exc}", "see the service log (a bug)")
        if not isinstance(result, Mapping):
            log.error("control: handler of %s returned %s, not a mapping", command, type(result).__name__)
            return _error(f"{command} failed: its handler returned no object", "see the service log (a bug)")
        if "ok" in result:  # failures are raised (RequestError), so a reply cannot claim both
            log.error("control: handler of %s returned its own 'ok'; raise RequestError instead", command)
        return {"ok": True, **{key: value for key, value in result.items() if key != "ok"}}

    def _ping(self, request: dict[str, Any]) -> dict[str, Any]:
        """answer pong and the station's clock"""
        now_ns = time.time_ns()
        return {"pong": True, "time": iso_utc(now_ns), "wall_ns": now_ns}

    def _status_command(self, request: dict[str, Any]) -> Mapping[str, Any]:
        """the service's state, counters and settings"""
        return self._status() if self._status is not None else {}

    def _verdicts(self, request: dict[str, Any]) -> dict[str, Any]:
        """verdict headers by seq: from_seq, to_seq (inclusive; default: the newest held)"""
        from_seq = whole_arg(request, "from_seq", minimum=0)
        held = self.ring.span()
        to_seq = whole_arg(request, "to_seq", minimum=0, default=held[1] if held else from_seq)
        if to_seq < from_seq:
            raise RequestError(f"verdicts: to_seq {to_seq} is below from_seq {from_seq}", fix="swap them")
        page_end = min(to_seq, from_seq + self._max_verdicts - 1)
        end = min(page_end, held[1]) if held else from_seq - 1
        headers, missing = self.ring.get(from_seq, end)
        return {
            "verdicts": headers,
            "missing": missing,
            "held": {"first_seq": held[0], "last_seq": held[1]} if held else None,
            "next_from_seq": page_end + 1 if held and page_end < min(to_seq, held[1]) else None,
            "max_per_request": self._max_verdicts,
        }

    def _help(self, request: dict[str, Any]) -> dict[str, Any]:
        """list the commands"""
        return {"commands": {name: _summary(handler) for name, handler in self._handlers.items()}}

    def _run(self) -> None:
        import zmq

        context = zmq.Context()
        socket = context.socket(zmq.REP)
        socket.linger = 0
        socket.maxmsgsize = MAX_REQUEST_BYTES
        authenticator = None
        try:
            secret_key_file, clients_dir = self._curve
            self.bound_endpoint, authenticator = bind_secured(
                context, socket, self.endpoint, "control", secret_key_file, clients_dir
            )
            self._ready()
        except PublishError as exc:
            self._ready(exc)
        try:
            if self._start_error is None:
                log.info("control socket on %s", self.bound_endpoint)
                self._serve(socket)
        except Exception:  # a bug here: the socket stops answering, so say so loudly
            log.exception("control %s: serving thread failed", self.bound_endpoint)
        finally:
            socket.close(linger=0)
            if authenticator is not None:
                authenticator.stop()
            context.term()

    def _serve(self, socket: Any) -> None:
        import zmq

        poller = zmq.Poller()
        poller.register(socket, zmq.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(POLL_MS):
                continue
            frames = socket.recv_multipart()
            if len(frames) == 1:
                reply = self.handle(frames[0])
            else:
                reply = _error(f"request has {len(frames)} frames", "send one JSON object in one frame")
            try:
                socket.send(encode_header(reply), flags=zmq.NOBLOCK)
            except zmq.ZMQError as exc:  # the client went away
                log.warning("control %s: reply not sent: %s", self.bound_endpoint, exc)


def _error(message: str, fix: str) -> dict[str, Any]:
    return {"ok": False, "error": message, "fix": fix}


def _summary(handler: Handler) -> str:
    doc = (handler.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


def request(
    endpoint: str,
    payload: Mapping[str, Any],
    *,
    timeout_s: float = 2.0,
    curve_server_key_file: Any = None,
    curve_client_key_file: Any = None,
) -> dict[str, Any]:
    """Send one request to the control socket at ``endpoint`` and return its reply (ok or not)."""
    import zmq

    socket = zmq.Context.instance().socket(zmq.REQ)
    socket.linger = 0
    socket.rcvtimeo = socket.sndtimeo = max(1, int(timeout_s * 1000))
    try:
        if curve_server_key_file is not None:
            from edge.publish.curve import make_client

            make_client(socket, curve_server_key_file, curve_client_key_file, role="control client")
        socket.connect(endpoint)
        socket.send(encode_header(payload))
        raw = socket.recv()
    except zmq.Again:
        raise ControlError(
            f"no reply from the control socket {endpoint} within {timeout_s:g} s",
            fix="check that inp-edge runs and that this is its control endpoint (station config)",
        ) from None
    except zmq.ZMQError as exc:
        raise ControlError(f"cannot reach the control socket {endpoint!r}: {exc}") from None
    finally:
        socket.close(linger=0)
    try:
        reply = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ControlError(f"the reply from {endpoint} is not JSON: {exc}") from None
    if not isinstance(reply, dict):
        raise ControlError(f"the reply from {endpoint} is not a JSON object")
    return reply


def fetch_verdicts(
    endpoint: str,
    first: int,
    last: int,
    *,
    timeout_s: float = 2.0,
    curve_server_key_file: Any = None,
    curve_client_key_file: Any = None,
) -> Iterator[dict[str, Any]]:
    """Every reply page of a ``verdicts`` request for ``first..last`` (following ``next_from_seq``).

    ``ControlError`` when the station does not answer, ``RequestError`` when it refuses.
    """
    from_seq: int | None = first
    while from_seq is not None:
        payload = {"cmd": "verdicts", "from_seq": from_seq, "to_seq": last}
        reply = request(
            endpoint, payload, timeout_s=timeout_s,
            curve_server_key_file=curve_server_key_file, curve_client_key_file=curve_client_key_file,
        )  # fmt: skip
        if not reply.get("ok"):
            raise RequestError(f"control {endpoint} refused seq {from_seq}..{last}: {reply.get('error')}",
                               fix=str(reply.get("fix", "")))  # fmt: skip
        yield reply
        from_seq = reply.get("next_from_seq")
