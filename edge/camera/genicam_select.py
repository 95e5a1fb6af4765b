"""Which camera: the devices the producers list, and picking the one a station names (pure).

``select_device`` matches every field the selector sets (serial number, device id, user-defined
name, index); when none or several match, the error lists every device found, so the operator can
correct ``source.genicam.device`` without another tool. ``DeviceNotFound`` (none matches) is worth
waiting for (the camera may be away); several matching is a config error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge.camera.genicam_settings import DeviceSelector
from edge.errors import SourceError

ACCESS_STATUS = {0: "unknown", 1: "read-write", 2: "read-only", 3: "no access", 4: "busy", 5: "open read-write",
                 6: "open read-only"}  # fmt: skip


class DeviceNotFound(SourceError):
    """No device matches the selector now (the camera may be away): worth trying again."""


@dataclass(frozen=True)
class DeviceSummary:
    """One device as the producers list it."""

    index: int  # position in the list (harvesters' device_info_list)
    vendor: str
    model: str
    serial_number: str
    user_name: str
    id: str
    tl_type: str
    producer: str  # the .cti file it came from
    access: str  # access status before opening: read-write, busy, ...

    @property
    def label(self) -> str:
        return f"{self.vendor} {self.model} (serial {self.serial_number or '?'})"

    def describe(self) -> str:
        """One line with everything ``source.genicam.device`` can select by (as `inp-edge cameras` lists it)."""
        user = f", user name {self.user_name!r}" if self.user_name else ""
        return (
            f"[{self.index}] {self.vendor} {self.model}, serial {self.serial_number!r}{user}, id {self.id!r}, "
            f"{self.tl_type}, {self.access}"
        )


def select_device(devices: list[DeviceSummary], selector: DeviceSelector) -> DeviceSummary:
    """The one device matching every field set in ``selector``; errors list the devices found."""
    if selector.index is not None and selector.index >= len(devices):
        raise DeviceNotFound(_nothing(devices, selector), fix=_SELECT_FIX)
    wanted = {"serial_number": selector.serial_number, "id": selector.id, "user_name": selector.user_name}
    matching = [
        device
        for device in devices
        if (selector.index is None or device.index == selector.index)
        and all(value is None or getattr(device, name) == value for name, value in wanted.items())
    ]
    if len(matching) == 1:
        return matching[0]
    if not matching:
        raise DeviceNotFound(_nothing(devices, selector), fix=_SELECT_FIX)
    listing = "\n".join(f"    {device.describe()}" for device in matching)
    raise SourceError(
        f"{len(matching)} cameras match {selector.describe()}:\n{listing}",
        fix="set source.genicam.device.serial_number (or id, user_name, index) to pick one",
    )


_SELECT_FIX = "connect the camera, or correct source.genicam.device (inp-edge cameras lists what is found)"


def _nothing(devices: list[DeviceSummary], selector: DeviceSelector) -> str:
    if not devices:
        return f"no camera found (looking for {selector.describe()})"
    listing = "\n".join(f"    {device.describe()}" for device in devices)
    return f"no camera matches {selector.describe()}; found:\n{listing}"


def list_devices(harvester: Any) -> list[DeviceSummary]:
    """The devices the producers of ``harvester`` found, in its order."""
    return [_summary(index, info) for index, info in enumerate(harvester.device_info_list)]


def _summary(index: int, info: Any) -> DeviceSummary:
    props = info.property_dict
    try:
        producer = str(info.parent.parent.parent.module.path_name)
    except Exception:  # noqa: BLE001 - which file a device came from is a detail for the listing
        producer = "?"
    text = {name: "" if props.get(name) is None else str(props.get(name)) for name in props}
    return DeviceSummary(
        index, text.get("vendor", ""), text.get("model", ""), text.get("serial_number", ""),
        text.get("user_defined_name", ""), text.get("id_", ""), text.get("tl_type", ""), producer,
        ACCESS_STATUS.get(props.get("access_status"), str(props.get("access_status"))),
    )  # fmt: skip
