"""``inp-edge run --config FILE``: start the inspection service of one station."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path

from edge.cli import Command

DESCRIPTION = """\
Run the inspection service of one station: frames from the configured source go through the
model; every part gets a pass / fail / error verdict, published on <station>/verdict at once, with
an overlay JPEG on <station>/overlay and a heartbeat on <station>/heartbeat every second. Fails,
errors and sampled passes are archived under the state folder; the control socket answers status
and verdict-by-seq requests (`inp-edge listen --control ENDPOINT` uses it to fill gaps).

Start-up refuses, before binding anything, a broken config (see `inp-edge check-config`), a model
that is missing, corrupt or breaks the artifact contract, and a GPU provider that fell back to the
CPU (unless model.allow_cpu_fallback). SIGINT / SIGTERM stop it within a few seconds: queued parts
are inspected and published first.

Exit status: 0 after a normal stop or the end of a finite source; 1 when a loop failed (the camera
or publishing broke: systemd restarts the service); 2 for a start-up error (config, model, sockets).
"""


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, metavar="FILE", help="station config (YAML)")
    parser.add_argument(
        "--max-parts",
        type=int,
        default=0,
        metavar="N",
        help="stop after N parts (default 0: run until stopped)",
    )
    parser.add_argument(
        "--summary-json",
        type=Path,
        default=None,
        metavar="PATH",
        help="write the end-of-run counters as JSON",
    )


def _run(args: argparse.Namespace) -> int:
    from edge.atomic import write_text_atomic
    from edge.config import load_config
    from edge.service import Service

    config = load_config(args.config)
    logging.basicConfig(
        level=getattr(logging, config.logging.level),
        format=f"%(asctime)s %(levelname)s [{config.station}] %(name)s: %(message)s",
        stream=sys.stderr,
    )
    service = Service(config, max_parts=max(0, args.max_parts))
    previous = {sig: signal.signal(sig, lambda *_: service.stop()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        summary = service.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    counters = summary.counters
    logging.getLogger("inp_edge.service").info(
        "stopped after %d parts in %.1f s: %d pass, %d fail, %d error",
        summary.parts, summary.wall_s, counters.get("pass", 0), counters.get("fail", 0), counters.get("error", 0),
    )  # fmt: skip
    if args.summary_json is not None:
        document = {"station": summary.station, "parts": summary.parts, "wall_s": summary.wall_s}
        document |= {"counters": counters, "exit_status": summary.exit_status}
        write_text_atomic(args.summary_json, json.dumps(document, indent=2) + "\n")
    return summary.exit_status


COMMAND = Command(
    name="run",
    help="run the inspection service of one station (camera -> model -> verdicts over ZeroMQ)",
    description=DESCRIPTION,
    add_arguments=_add_arguments,
    run=_run,
)
