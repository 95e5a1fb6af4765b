"""``inp-edge cameras``: the GenTL producers found and every camera they see, to write a station config."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from edge.cli import Command

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
        devices = [asdict(device) for device in list_devices(harvester)]
        for device in devices:
            device["details"] = None if args.no_open else probe(harvester, device["index"])
    finally:
        harvester.reset()
    if args.json:
        print(json.dumps({"producers": [str(path) for path in producers], "cameras": devices}, indent=2))
    else:
        print(report(producers, devices))
    return 0 if devices else 1


def probe(harvester: Any, index: int) -> dict[str, Any]:
    """Pixel formats, size and trigger nodes of device ``index``, or {"error": why} when it cannot open."""
    import signal

    previous = signal.getsignal(signal.SIGINT)
    try:
        acquirer = harvester.create(index)
    except Exception as exc:  # noqa: BLE001 - a camera in use or unreachable is listed with the reason
        return {
            "error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        }
    finally:
        signal.signal(signal.SIGINT, previous)  # harvesters installs its own handler in the main thread
    try:
        return _details(acquirer.remote_device.node_map)
    finally:
        acquirer.destroy()


def _details(node_map: Any) -> dict[str, Any]:
    def value(name: str, attribute: str = "value") -> Any:
        try:
            return getattr(node_map.get_node(name), attribute) if node_map.has_node(name) else None
        except Exception:  # noqa: BLE001 - an unreadable node is shown as unknown
            return None

    formats = value("PixelFormat", "symbolics")
    sources = value("TriggerSource", "symbolics")
    return {
        "pixel_formats": list(formats) if formats else [],
        "pixel_format": value("PixelFormat"),
        "width": value("Width"),
        "height": value("Height"),
        "width_max": value("Width", "max"),
        "height_max": value("Height", "max"),
        "trigger_nodes": [name for name in TRIGGER_NODES if node_map.has_node(name)],
        "trigger_sources": list(sources) if sources else [],
    }


def report(producers: tuple[Path, ...], devices: list[dict[str, Any]]) -> str:
    lines = [f"producers: {', '.join(str(path) for path in producers)}"]
    if not devices:
        lines.append("no camera found (check the cable, power, and for GigE Vision the network settings)")
    for device in devices:
        user = f", user name {device['user_name']!r}" if device["user_name"] else ""
        lines.append(
            f"[{device['index']}] {device['vendor']} {device['model']}, serial {device['serial_number']!r}{user}, "
            f"id {device['id']!r}, {device['tl_type']}, {device['access']}  ({Path(device['producer']).name})"
        )
        lines.append(f"    {_details_text(device['details'])}")
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
