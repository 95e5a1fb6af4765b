"""One GenICam camera through harvesters, in the process that owns it (edge/camera/camera_child.py).

``open_harvester`` loads the GenTL producers (a file that is not a loadable library is a start-up
``SourceError``) and lists the devices; ``Camera.open`` picks the one the station names
(edge/camera/genicam_select.py: the error lists every device found when none or several match),
creates the acquirer (``create``: the one place that does), applies
the profile and the trigger node by node (edge/camera/genicam_nodes.py) and sets the buffer count.

``Camera.fetch(timeout_s, out)`` waits at most ``timeout_s`` for a buffer, asks ``out(shape)`` where
the frame goes, converts its pixels there (or into a new array when ``out`` gives None) while the
buffer is still held, and queues the buffer back to the driver: the conversion is the copy. When
``out`` gives ``DROP`` (no room for the frame) nothing is converted: the buffer goes straight back
and the frame comes without an image. The buffer's frame (block) id and timestamp come with it when the
producer has them. A GenTL error other than the timeout means the camera is gone (``CameraGone``):
a pulled cable surfaces as the producer's ``EventGetData`` failing (harvesters logs it and raises
the genicam.gentl exception, e.g. ``IoException``, GC_ERR_IO), or as the device's access status
changing (``lost_reason``); some producers only stop delivering, which the caller notices in
free-run by the frame timeout.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.camera import pixel_format
from edge.camera.genicam_nodes import apply_writes, first_line, read_node, trigger_writes
from edge.camera.genicam_select import (
    ACCESS_STATUS,
    DeviceNotFound,
    DeviceSummary,
    list_devices,
    select_device,
)
from edge.camera.genicam_settings import GenICamSettings
from edge.camera.profile import CameraProfile
from edge.errors import SourceError

log = logging.getLogger("inp_edge.camera")


class CameraGone(Exception):
    """The camera stopped answering while streaming; the message says how it showed."""


class Drop:
    """The type of ``DROP``, what ``fetch``'s ``out`` returns when there is no room for the frame."""

    def __repr__(self) -> str:
        return "DROP"


DROP = Drop()
Out = Callable[[tuple[int, ...]], "np.ndarray | Drop | None"]  # where a frame of this shape goes


@dataclass(frozen=True)
class Grabbed:
    """One frame out of the driver: pixels converted and owned, with the camera's ids and times."""

    image: np.ndarray | None  # None: dropped unconverted (``out`` had no room)
    block_id: int | None
    camera_timestamp_ns: int | None
    t_ns: int  # monotonic, when the buffer was received
    wall_ns: int
    pixel_format: str  # as delivered (the buffer says it; the node may claim otherwise)


def open_harvester(producers: tuple[Path, ...]) -> Any:
    """A harvesters ``Harvester`` with ``producers`` loaded and the device list read."""
    from harvesters.core import Harvester

    harvester = Harvester()
    for path in producers:
        try:
            harvester.add_file(str(path), check_existence=True, check_validity=True)
        except (OSError, FileNotFoundError) as exc:
            harvester.reset()
            raise SourceError(
                f"GenTL producer {path} cannot be loaded: {exc or 'file not found'}",
                fix="point source.genicam.producers at the vendor's .cti for this machine's architecture "
                "(its SDK may also need its libraries on the loader path)",
            ) from exc
    harvester.update()
    return harvester


class Camera:
    """An opened device: profile and trigger applied, not yet streaming."""

    def __init__(self, acquirer: Any, summary: DeviceSummary, settings: GenICamSettings) -> None:
        self.acquirer = acquirer
        self.summary = summary
        self.settings = settings
        self.node_map = acquirer.remote_device.node_map
        self._access = self.access_status()
        self._warned_format = False

    @classmethod
    def open(cls, harvester: Any, settings: GenICamSettings, profile: CameraProfile | None) -> Camera:
        summary = select_device(list_devices(harvester), settings.device)
        acquirer = create(harvester, summary)
        camera = cls(acquirer, summary, settings)
        try:
            camera._configure(profile)
        except BaseException:
            camera.close()
            raise
        return camera

    def _configure(self, profile: CameraProfile | None) -> None:
        label = self.summary.label
        if profile is not None:
            if profile.model not in (self.summary.model, self._node_text("DeviceModelName")):
                log.warning("camera %s: profile %s is for model %s", label, profile.name, profile.model)
            apply_writes(self.node_map, profile.nodes, label, f"profile {profile.name}")
        writes = trigger_writes(self.settings.trigger, self.node_map, label)
        apply_writes(self.node_map, writes, label, "source.genicam.trigger")
        self.acquirer.num_buffers = max(self.settings.buffers, self.acquirer.min_num_buffers)
        # harvesters waits in the producer's EventGetData in slices (1 ms by default): a fifth of a fetch
        # keeps an idle camera process near 0 % CPU and still returns a buffer as soon as it arrives
        slice_ms = max(1, min(20, int(self.settings.fetch_timeout_s * 1000 / 5)))
        self.acquirer.timeout_period_on_update_event_data_call = slice_ms
        pixel_format.layout_of(self.node_pixel_format)  # an unsupported format stops here, named

    def _node_text(self, name: str) -> str:
        value = read_node(self.node_map, name)
        return "" if value is None else str(value)

    @property
    def node_pixel_format(self) -> str:
        return self._node_text("PixelFormat") or "Mono8"

    def expected_shape(self) -> tuple[int, ...]:
        """The model input shape the nodes say frames will have (the delivered frame decides)."""
        width, height = (int(self._node_text(name) or 0) for name in ("Width", "Height"))
        return pixel_format.output_shape(self.node_pixel_format, width, height)

    def frame_rate(self) -> float | None:
        """The free-run frame rate the camera says it runs at (AcquisitionFrameRate), if it says."""
        try:
            return float(self._node_text("AcquisitionFrameRate")) or None
        except ValueError:
            return None

    def access_status(self) -> int | None:
        try:
            return int(self.acquirer.device.module.access_status)
        except Exception:  # noqa: BLE001 - a producer that cannot say reports nothing
            return None

    def lost_reason(self) -> str | None:
        """Why the camera counts as gone by its access status (None while it is as opened)."""
        now = self.access_status()
        if now == self._access:
            return None
        before, after = (ACCESS_STATUS.get(value, str(value)) for value in (self._access, now))
        return f"device access status changed from {before} to {after}"

    def start(self) -> None:
        from genicam.gentl import GenericException

        try:
            self.acquirer.start()
        except GenericException as exc:
            raise CameraGone(f"acquisition did not start: {type(exc).__name__}: {first_line(exc)}") from exc

    def execute_trigger(self) -> None:
        try:
            self.node_map.get_node("TriggerSoftware").execute()
        except Exception as exc:  # noqa: BLE001 - GenApi / GenTL raise their own classes
            raise CameraGone(f"TriggerSoftware failed: {type(exc).__name__}: {exc}") from exc

    def fetch(self, timeout_s: float, out: Out | None = None) -> Grabbed | None:
        """The next frame within ``timeout_s``, else None; ``CameraGone`` when the producer fails."""
        from genicam.gentl import GenericException, TimeoutException

        try:
            buffer = self.acquirer.fetch(timeout=timeout_s)
        except TimeoutException:
            return None
        except GenericException as exc:
            raise CameraGone(f"fetch failed: {type(exc).__name__}: {first_line(exc)}") from exc
        t_ns, wall_ns = time.monotonic_ns(), time.time_ns()
        try:
            with buffer:
                return self._convert(buffer, t_ns, wall_ns, out)
        except GenericException as exc:
            raise CameraGone(
                f"buffer could not be read or queued back: {type(exc).__name__}: {first_line(exc)}"
            ) from exc

    def _convert(self, buffer: Any, t_ns: int, wall_ns: int, out: Out | None) -> Grabbed | None:
        components = buffer.payload.components
        if not components:
            return None
        component = components[0]
        delivered, width, height = str(component.data_format), int(component.width), int(component.height)
        self._check_format(delivered)
        target = out(pixel_format.output_shape(delivered, width, height)) if out else None
        image = None
        if target is not DROP:
            image = pixel_format.to_model_input(
                component.data, delivered, width, height, target, x_padding=int(component.x_padding)
            )
        module = buffer.module
        return Grabbed(
            image, _info(module, "frame_id"), _info(module, "timestamp_ns"), t_ns, wall_ns, delivered
        )

    def _check_format(self, delivered: str) -> None:
        if delivered != self.node_pixel_format and not self._warned_format:
            self._warned_format = True
            log.warning(
                "camera %s delivers %s although PixelFormat reads %s; frames are converted as delivered",
                self.summary.label, delivered, self.node_pixel_format,
            )  # fmt: skip

    def close(self) -> None:
        """Stop and release the acquirer (best effort: the device may already be gone)."""
        for step in (self.acquirer.stop, self.acquirer.destroy):
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - closing a lost camera fails in producer-specific ways
                log.debug("camera %s: %s failed while closing: %s", self.summary.label, step.__name__, exc)


def create(harvester: Any, summary: DeviceSummary) -> Any:
    """The acquirer of ``summary``'s device; ``DeviceNotFound`` (from the GenTL error) when it cannot open."""
    from genicam.gentl import GenericException

    previous = signal.getsignal(signal.SIGINT)
    try:
        return harvester.create(summary.index)
    except GenericException as exc:
        raise DeviceNotFound(
            f"camera {summary.label} cannot be opened: {type(exc).__name__}: {first_line(exc)}",
            fix="close the other program that uses the camera (another inp-edge instance, a viewer)",
        ) from exc
    finally:
        if signal.getsignal(signal.SIGINT) is not previous:  # harvesters installs its own in the main thread
            signal.signal(signal.SIGINT, previous)


def _info(module: Any, name: str) -> int | None:
    try:
        value = getattr(module, name)
    except Exception:  # noqa: BLE001 - NotAvailableException and kin: the producer does not say
        return None
    return int(value) if value is not None else None
