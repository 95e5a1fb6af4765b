"""``inp-edge cameras``: the GenTL producers found and every camera they see, to write a station config."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.cli import Command

if TYPE_CHECKING:
    from edge.camera.genicam_select import DeviceSummary

DESCRIPTION = """\
List the GenTL producers (.cti) and the cameras they find: vendor, model, serial number, user-defined
name, device id, transport, access status, and, opening each camera briefly, its pixel formats, its
image size and whether it has trigger nodes (TriggerMode, TriggerSoftware, the TriggerSource lines).
A camera another program holds (a running inp-edge service) is listed without those details.

Producers: the --producer files or folders, else the folders in GENICAM_GENTL64_PATH (the camera
vendor's SDK sets it). The [index], serial number, id and user name are what a station's
source.genicam.device selects by (docs/cameras.md).

Exit status: 0 when at least one camera was found, 1 when none, 2 when no producer could be loaded.

examples:
  inp-edge cameras
  inp-edge cameras --producer /opt/pylon/lib/gentlproducer/gtl/ProducerU3V.cti --json
"""

TRIGGER_NODES = ("TriggerMode", "TriggerSoftware", "TriggerSource", "TriggerActivation", "TriggerDelay")


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--producer",
        action="append",
        type=Path,
        default=[],
        metavar="PATH",
        help="a GenTL producer (.cti) or a folder of them; repeat for more (default: GENICAM_GENTL64_PATH)",
    )
    parser.add_argument("--json", action="store_true", help="print producers and cameras as JSON")
    parser.add_argument(
        "--no-open", action="store_true", help="do not open the cameras (no pixel formats, size or trigger)"
    )


def _run(args: argparse.Namespace) -> int:
    from edge.camera.genicam_device import open_harvester
    from edge.camera.genicam_select import list_devices
    from edge.camera.genicam_settings import producer_files

    producers = producer_files(tuple(args.producer))
    harvester = open_harvester(producers)
    try:
        devices = list_devices(harvester)
        details = [None if args.no_open else probe(harvester, device) for device in devices]
    finally:
        harvester.reset()
    if args.json:
        cameras = [
            asdict(device) | {"details": found} for device, found in zip(devices, details, strict=True)
        ]
        print(json.dumps({"producers": [str(path) for path in producers], "cameras": cameras}, indent=2))
    else:
        print(report(producers, devices, details))
    return 0 if devices else 1


def probe(harvester: Any, device: DeviceSummary) -> dict[str, Any]:
    """Pixel formats, size and trigger nodes of ``device``, or {"error": why} when it cannot open."""
    from edge.camera.genicam_device import create
    from edge.camera.genicam_nodes import first_line
    from edge.camera.genicam_select import DeviceNotFound

    try:
        acquirer = create(harvester, device)
    except DeviceNotFound as exc:  # a camera in use or unreachable is listed with the reason
        cause = exc.__cause__ or exc
        return {"error": f"{type(cause).__name__}: {first_line(cause)}"}
    try:
        return _details(acquirer.remote_device.node_map)
    finally:
        acquirer.destroy()


def _details(node_map: Any) -> dict[str, Any]:
    from edge.camera.genicam_nodes import read_node

    formats = read_node(node_map, "PixelFormat", "symbolics")
    sources = read_node(node_map, "TriggerSource", "symbolics")
    return {
        "pixel_formats": list(formats) if formats else [],
        "pixel_format": read_node(node_map, "PixelFormat"),
        "width": read_node(node_map, "Width"),
        "height": read_node(node_map, "Height"),
        "width_max": read_node(node_map, "Width", "max"),
        "height_max": read_node(node_map, "Height", "max"),
        "trigger_nodes": [name for name in TRIGGER_NODES if node_map.has_node(name)],
        "trigger_sources": list(sources) if sources else [],
    }


def report(
    producers: tuple[Path, ...], devices: list[DeviceSummary], details: list[dict[str, Any] | None]
) -> str:
    lines = [f"producers: {', '.join(str(path) for path in producers)}"]
    if not devices:
        lines.append("no camera found (check the cable, power, and for GigE Vision the network settings)")
    for device, found in zip(devices, details, strict=True):
        lines.append(f"{device.describe()}  ({Path(device.producer).name})")
        lines.append(f"    {_details_text(found)}")
    return "\n".join(lines)


def _details_text(details: dict[str, Any] | None) -> str:
    if details is None:
        return "not opened (--no-open)"
    if "error" in details:
        return f"cannot be opened now: {details['error']}"
    size = f"{details['width']}x{details['height']} (max {details['width_max']}x{details['height_max']})"
    formats = ", ".join(details["pixel_formats"]) or "?"
    nodes = details["trigger_nodes"]
    if not nodes:
        trigger = "no trigger (free-run only)"
    else:
        software = "software" if "TriggerSoftware" in nodes else "no software trigger"
        lines = ", ".join(s for s in details["trigger_sources"] if s != "Software") or "no lines"
        trigger = f"trigger: {software}; sources {lines}"
    return f"pixel formats {formats} (now {details['pixel_format']}); size {size}; {trigger}"


COMMAND = Command(
    name="cameras",
    help="list the GenTL producers and cameras found (vendor, model, serial, formats, size, trigger)",
    description=DESCRIPTION,
    add_arguments=_add_arguments,
    run=_run,
)
