"""``inp-edge enroll --live``: enrollment by the running service, driven over its control socket.

The protocol (docs/messages.md): ``enroll_start`` → the service collects the next K parts; the CLI
polls ``enroll_status`` (a progress bar of the parts collected) until the state is ``done``,
``failed`` or ``cancelled``; Ctrl-C sends ``enroll_stop`` with ``cancel``. ``activate`` switches
the service to a product saved off-line (``product`` command).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.cli import say
from edge.errors import ConfigError, InpEdgeError

if TYPE_CHECKING:
    from edge.products.product import Product

POLL_S = 0.2
CALL_TIMEOUT_S = 5.0
STOP_TIMEOUT_S = 35.0  # the service builds from what came before it answers enroll_stop (up to 30 s)
FINAL_STATES = ("done", "failed", "cancelled")


@dataclass(frozen=True)
class ControlTarget:
    endpoint: str
    curve_server_key_file: Path | None = None
    curve_client_key_file: Path | None = None
    state_dir: Path | None = None  # where the saved product can be read back (None: not known here)


def add_curve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--curve-server-key",
        metavar="FILE",
        type=Path,
        help="the service's public CURVE key, when its control socket uses CURVE "
        "(default with --config: control.curve_secret_key_file)",
    )
    parser.add_argument(
        "--curve-client-key", metavar="FILE", type=Path, help="this client's .key_secret (default: a new one)"
    )


def control_target(args: argparse.Namespace) -> ControlTarget:
    """The service's control endpoint and keys, from the options, else from the station config."""
    config = None
    if args.config is not None:
        from edge.config import load_config
        from edge.control import client_endpoint

        config = load_config(args.config)
    if args.endpoint is None and config is None:
        raise ConfigError("no control endpoint", fix="pass --config STATION.yaml or --endpoint EP")
    endpoint = args.endpoint or client_endpoint(config.control.endpoint)
    server_key = args.curve_server_key or (config.control.curve_secret_key_file if config else None)
    state_dir = args.state_dir or (config.state_dir if config else None)
    return ControlTarget(endpoint, server_key, args.curve_client_key, state_dir)


def call(
    target: ControlTarget, payload: Mapping[str, Any], timeout_s: float = CALL_TIMEOUT_S
) -> dict[str, Any]:
    """One request; a refusal (``ok`` false) becomes a RequestError with the service's fix."""
    from edge.control import RequestError, request

    reply = request(
        target.endpoint, payload, timeout_s=timeout_s,
        curve_server_key_file=target.curve_server_key_file, curve_client_key_file=target.curve_client_key_file,
    )  # fmt: skip
    if not reply.get("ok"):
        raise RequestError(
            f"the service at {target.endpoint} refused {payload.get('cmd')}: {reply.get('error')}",
            fix=str(reply.get("fix") or "see docs/messages.md for the command's arguments"),
        )
    return reply


def run_live(args: argparse.Namespace) -> int:
    if args.keep_flagged:
        raise ConfigError(
            "--keep-flagged is for --images: the service leaves flagged parts out",
            fix="drop --keep-flagged, or enroll from a folder of the parts' images (--images DIR)",
        )
    if args.model is not None:
        raise ConfigError(
            "--model is for --images: the service enrolls with its own model", fix="drop --model"
        )
    target = control_target(args)
    payload: dict[str, Any] = {"cmd": "enroll_start", "product": args.product, "shots": args.shots}
    if args.fusion is not None:
        payload["fusion"] = args.fusion
    if args.max_memory_tokens is not None:
        payload["max_memory_tokens"] = args.max_memory_tokens
    payload["activate"] = bool(args.activate)
    call(target, payload)
    say(
        "enroll", f"collecting {args.shots} good part(s) at {target.endpoint}: run good parts past the camera"
    )
    try:
        status = follow(target, args.shots)
    except KeyboardInterrupt:
        call(target, {"cmd": "enroll_stop", "cancel": True}, timeout_s=STOP_TIMEOUT_S)
        say("enroll", "cancelled on the service: nothing saved")
        raise
    return report(target, status)


def follow(target: ControlTarget, shots: int, poll_s: float = POLL_S) -> dict[str, Any]:
    """Poll ``enroll_status`` with a progress bar until a final state; that last status."""
    from tqdm import tqdm

    with tqdm(total=shots, desc="collecting", unit="part", file=sys.stderr, dynamic_ncols=True) as bar:
        while True:
            status = call(target, {"cmd": "enroll_status"})
            collected = int(status.get("collected") or 0)
            bar.update(max(0, min(collected, shots) - bar.n))
            bar.set_description(str(status.get("state")))
            if status.get("state") in FINAL_STATES:
                return status
            time.sleep(poll_s)


def report(target: ControlTarget, status: Mapping[str, Any]) -> int:
    """Print the parts, flags and the saved product; a failed or cancelled enrollment is an error."""
    from edge.products.product import ProductError

    print(format_live_parts(status))
    state, product = status.get("state"), status.get("product")
    if state != "done":
        raise ProductError(
            f"enrollment of {product} on the service ended {state}"
            + (f": {status['error']}" if status.get("error") else ""),
            fix="check the service log (journalctl -u inp-edge@STATION), then enroll again",
        )
    version = status.get("version")
    build_s = float(status.get("build_s") or 0.0)
    if target.state_dir is not None and isinstance(version, int):
        from edge.enroll_cli import format_summary
        from edge.products.registry import ProductRegistry

        registry = ProductRegistry(target.state_dir)
        print(format_summary(registry.load(product, version=version), build_s, registry.folder(product)))
    else:
        print(f"saved {product} v{version} on the service; built in {build_s:.2f} s after the last capture")
        print(f"  details: inp-edge products show {product} --state-dir STATE_DIR (on the station)")
    return 0


def format_live_parts(status: Mapping[str, Any]) -> str:
    scores = list(status.get("shot_scores") or [])
    labels = list(status.get("shot_labels") or [f"part {index + 1}" for index in range(len(scores))])
    lines = [f"part scores ({len(scores)} parts kept; a typical good part scores about 1):"]
    lines += [f"  {label:<12} {float(score):8.3f}" for label, score in zip(labels, scores, strict=False)]
    for flag in status.get("flagged") or []:
        lines.append(f"  FLAGGED {flag.get('label')}: {flag.get('reason')}; left out")
    return "\n".join(lines)


def activate(args: argparse.Namespace, product: Product) -> None:
    """Switch the running service to the version just saved (it loads it from its own state dir)."""
    target = control_target(args)
    try:
        reply = call(target, {"cmd": "product", "name": product.name, "version": product.version})
    except InpEdgeError as exc:
        raise type(exc)(
            f"{product.label()} is saved, but the service did not switch to it: {exc.message}",
            fix=exc.fix
            or f"switch it by hand: inp-edge ctl product name={product.name} (--config or --endpoint)",
        ) from None
    frame = reply.get("effective_from_frame")
    when = f"from frame {frame}" if frame is not None else "from the next frame (none came yet)"
    print(f"active on the service: {product.label()}, {when}")
