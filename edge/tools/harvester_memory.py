"""How much memory harvesters keeps when a camera is opened again: why each session has its own process.

::

    python -m edge.tools.harvester_memory --producer PATH.cti [--producer ...] --out REPORT.json

For each producer, two cases, each measured in a fresh process (``spawn``):

- ``acquirer``: one ``Harvester``; every cycle creates the acquirer of device ``--index``, starts it,
  fetches ``--frames`` buffers (copying each), stops and destroys it: what a source that reopened a
  lost camera in one process would do.
- ``harvester``: the same, with a new ``Harvester`` (producers loaded, devices listed) every cycle and
  ``reset()`` after it.

Resident memory (VmRSS) is read after ``--warmup`` cycles (what is made once is made by then) and
after ``--cycles`` more; the report gives both and the growth. The device is opened through the
service's own code (edge/camera/genicam_device.py) and set to free-run first.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from concurrent.futures import ProcessPoolExecutor
from importlib.metadata import version
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from edge.atomic import write_text_atomic
from edge.tools.memory import rss_mb

CASES = ("acquirer", "harvester")


def _cycle(harvester: Any, index: int, frames: int) -> None:
    from edge.camera.genicam_device import create
    from edge.camera.genicam_nodes import apply_writes, trigger_writes
    from edge.camera.genicam_select import list_devices
    from edge.camera.genicam_settings import TriggerSettings

    device = list_devices(harvester)[index]
    acquirer = create(harvester, device)
    try:
        node_map = acquirer.remote_device.node_map
        apply_writes(
            node_map, trigger_writes(TriggerSettings(), node_map, device.label), device.label, "free-run"
        )
        acquirer.start()
        for _ in range(frames):
            with acquirer.fetch(timeout=2.0) as buffer:
                buffer.payload.components[0].data.copy()
        acquirer.stop()
    finally:
        acquirer.destroy()


def measure(producer: Path, case: str, index: int, cycles: int, warmup: int, frames: int) -> dict[str, Any]:
    """One case in this process: resident memory after the warm-up cycles and after ``cycles`` more."""
    import logging

    from edge.camera.genicam_device import open_harvester

    logging.getLogger("harvesters").setLevel(logging.CRITICAL)
    harvester = open_harvester((producer,)) if case == "acquirer" else None
    start_mb = 0.0
    for cycle in range(warmup + cycles):
        if cycle == warmup:
            start_mb = rss_mb()
        own = harvester or open_harvester((producer,))
        try:
            _cycle(own, index, frames)
        finally:
            if harvester is None:
                own.reset()
    end_mb = rss_mb()
    if harvester is not None:
        harvester.reset()
    return {
        "producer": producer.name, "case": case, "rss_after_warmup_mb": round(start_mb, 2),
        "rss_end_mb": round(end_mb, 2), "growth_mb": round(end_mb - start_mb, 2),
    }  # fmt: skip


def run(producers: list[Path], index: int, cycles: int, warmup: int, frames: int) -> dict[str, Any]:
    results = []
    for producer in producers:
        for case in CASES:
            with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as fresh:
                results.append(fresh.submit(measure, producer, case, index, cycles, warmup, frames).result())
            print(json.dumps(results[-1]))
    return {
        "command": "python -m edge.tools.harvester_memory " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, {platform.system()} {platform.release()}",
        "versions": {name: version(name) for name in ("harvesters", "genicam")},
        "device_index": index, "cycles": cycles, "warmup_cycles": warmup, "frames_per_cycle": frames,
        "results": results,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.tools.harvester_memory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--producer", type=Path, action="append", required=True, help="a GenTL producer")
    parser.add_argument("--index", type=int, default=0, help="device index (inp-edge cameras lists them)")
    parser.add_argument("--cycles", type=int, default=20, help="measured cycles")
    parser.add_argument("--warmup", type=int, default=2, help="cycles before the first reading")
    parser.add_argument("--frames", type=int, default=3, help="buffers fetched per cycle")
    parser.add_argument("--out", type=Path, help="write the report (JSON) here")
    args = parser.parse_args(argv)
    report = run(args.producer, args.index, args.cycles, args.warmup, args.frames)
    if args.out:
        write_text_atomic(args.out, json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
