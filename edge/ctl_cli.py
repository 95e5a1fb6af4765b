"""``inp-edge ctl``: one request to a station's control socket, its reply printed for a person.

The request is ``{"cmd": COMMAND, key: value, ...}``; each value is read as JSON when it parses
(``version=3``, ``activate=true``, ``wait_s=0.5``) and as a string otherwise (``name=cookie``).
zmq is imported inside ``run`` (the parser imports this module).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from edge.cli import Command
from edge.errors import ConfigError

DEFAULT_TIMEOUT_S = 10.0
WAITING_COMMANDS = {
    "enroll_stop": 30.0,
    "product": 2.0,
    "apply": 2.0,
    "rollback": 2.0,
}  # their default wait_s
EXIT_OK, EXIT_NO_REPLY, EXIT_ERROR_REPLY = 0, 1, 2

DESCRIPTION = """\
Send one command to a running station's control socket and print the reply.

  inp-edge ctl --config station.yaml status
  inp-edge ctl --config station.yaml product name=cookie
  inp-edge ctl --config station.yaml enroll_start product=cookie shots=4 activate=true
  inp-edge ctl --config station.yaml enroll_status
  inp-edge ctl --config station.yaml calibrate_start label=good
  inp-edge ctl --config station.yaml preview target_false_reject=0.001
  inp-edge ctl --config station.yaml apply rule=tail
  inp-edge ctl --endpoint tcp://127.0.0.1:5557 help

Arguments are key=value; a value is JSON when it parses (3, true, 0.5, null), else a string.
docs/messages.md lists every command with its request and reply. With --config the endpoint and
the station's CURVE key come from the station config (the client reads the public half of the
station's key file); --curve-server-key / --curve-client-key set them by hand.

Exit status: 0 ok; 2 the station answered with an error (printed with its fix) or a usage error;
1 no reply within --timeout-s.
"""


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", type=Path, metavar="FILE", help="station config: its control endpoint")
    where.add_argument("--endpoint", metavar="EP", help="the control endpoint, e.g. tcp://127.0.0.1:5557")
    parser.add_argument(
        "--timeout-s", type=float, default=None, metavar="S",
        help=f"how long to wait for the reply (default {DEFAULT_TIMEOUT_S:g} s, more for commands that wait)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the reply as JSON")
    parser.add_argument(
        "--curve-server-key", type=Path, metavar="FILE", help="the station's public CURVE key"
    )
    parser.add_argument("--curve-client-key", type=Path, metavar="FILE", help="this client's .key_secret")
    parser.add_argument(
        "command", metavar="COMMAND", help="status, product, enroll_start, preview, apply, ..."
    )
    parser.add_argument("arguments", nargs="*", metavar="KEY=VALUE", help="the command's arguments")


def parse_arguments(command: str, items: Sequence[str]) -> dict[str, Any]:
    """``{"cmd": command, key: value, ...}`` from ``key=value`` words (pure)."""
    request: dict[str, Any] = {"cmd": command}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"argument {item!r} is not key=value", fix="write e.g. name=cookie or shots=4")
        try:
            request[key] = json.loads(text)
        except json.JSONDecodeError:
            request[key] = text
    return request


def timeout_for(request: Mapping[str, Any], given_s: float | None) -> float:
    if given_s is not None:
        return given_s
    wait_s = request.get("wait_s", WAITING_COMMANDS.get(str(request["cmd"]), 0.0))
    return DEFAULT_TIMEOUT_S + (float(wait_s) if isinstance(wait_s, int | float) else 0.0)


def _target(args: argparse.Namespace) -> tuple[str, Path | None, Path | None]:
    server_key, client_key = args.curve_server_key, args.curve_client_key
    if args.config is None:
        return args.endpoint, server_key, client_key
    from edge.config import load_config
    from edge.control import client_endpoint

    control = load_config(args.config).control
    return client_endpoint(control.endpoint), server_key or control.curve_secret_key_file, client_key


def _run(args: argparse.Namespace) -> int:
    from edge.control import ControlError, request

    payload = parse_arguments(args.command, args.arguments)
    endpoint, server_key, client_key = _target(args)
    try:
        reply = request(
            endpoint, payload, timeout_s=timeout_for(payload, args.timeout_s),
            curve_server_key_file=server_key, curve_client_key_file=client_key,
        )  # fmt: skip
    except ControlError as exc:
        print(f"inp-edge ctl: {exc}", file=sys.stderr)
        return EXIT_NO_REPLY
    if args.json:
        print(json.dumps(reply, indent=2, ensure_ascii=False))
    elif reply.get("ok"):
        print(format_reply(args.command, reply))
    if not reply.get("ok"):
        print(f"inp-edge ctl {args.command}: error: {reply.get('error')}", file=sys.stderr)
        if reply.get("fix"):
            print(f"  fix: {reply['fix']}", file=sys.stderr)
        return EXIT_ERROR_REPLY
    return EXIT_OK


def format_reply(command: str, reply: Mapping[str, Any]) -> str:
    from edge.ctl_format import format_enrollment, format_fields, format_preview_reply, format_status

    if command == "status":
        return format_status(reply)
    if command == "preview":
        return format_preview_reply(reply)
    if command in ("enroll_status", "enroll_stop"):
        return format_enrollment(reply)
    return format_fields(reply)


COMMAND = Command(
    name="ctl",
    help="send a command to a running station (status, product, enroll, calibrate, preview, apply, ...)",
    description=DESCRIPTION,
    add_arguments=_add_arguments,
    run=_run,
)
