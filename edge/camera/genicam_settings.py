"""Settings of the GenICam source: plain frozen values (they travel to the camera process pickled).

``GenICamSettings.from_config`` reads the station config's ``source.genicam`` section (any object with
its attributes); the meaning of every field is in docs/config.md (``source.genicam.*``). ``producers``
resolves the GenTL producer files: the configured files and folders, else the folders listed in
``GENICAM_GENTL64_PATH``; each folder contributes its ``*.cti`` files in name order.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.errors import SourceError

FREE_RUN, SOFTWARE, LINE = "free-run", "software", "line"
TRIGGER_MODES = (FREE_RUN, SOFTWARE, LINE)
GENTL_PATH_VARIABLE = "GENICAM_GENTL64_PATH"


@dataclass(frozen=True)
class DeviceSelector:
    """Which camera: every field set must match; none set = the only device found."""

    serial_number: str | None = None
    id: str | None = None
    user_name: str | None = None
    index: int | None = None

    def describe(self) -> str:
        parts = [f"{name} {value!r}" for name, value in self._set().items()]
        return ", ".join(parts) if parts else "no selector (the only camera)"

    def _set(self) -> dict[str, Any]:
        return {name: value for name, value in vars(self).items() if value is not None}


@dataclass(frozen=True)
class TriggerSettings:
    mode: str = FREE_RUN
    selector: str = "FrameStart"
    source: str = "Line0"
    activation: str = "RisingEdge"
    delay_us: float = 0.0
    timeout_s: float = 1.0

    @property
    def triggered(self) -> bool:
        return self.mode != FREE_RUN


@dataclass(frozen=True)
class GenICamSettings:
    producers: tuple[Path, ...] = ()  # files or folders; () = GENICAM_GENTL64_PATH
    device: DeviceSelector = field(default_factory=DeviceSelector)
    profile: Path | None = None
    trigger: TriggerSettings = field(default_factory=TriggerSettings)
    fetch_timeout_s: float = 0.05
    frame_timeout_s: float = 2.0
    buffers: int = 8
    reconnect_backoff_max_s: float = 1.0
    start_timeout_s: float = 10.0
    # Called in the camera process before the producer loads, as "module:function" (tests inject
    # faults at the producer's calls with it); not a station config key.
    process_hook: str = ""
    log_level: str = "INFO"

    @classmethod
    def from_config(cls, genicam: Any, **extra: Any) -> GenICamSettings:
        """From the station config's ``source.genicam`` section (a ``GenICamConfig``)."""
        device, trigger = genicam.device, genicam.trigger
        return cls(
            producers=tuple(genicam.producers),
            device=DeviceSelector(device.serial_number, device.id, device.user_name, device.index),
            profile=genicam.profile,
            trigger=TriggerSettings(
                trigger.mode,
                trigger.selector,
                trigger.source,
                trigger.activation,
                trigger.delay_us,
                trigger.timeout_s,
            ),  # fmt: skip
            fetch_timeout_s=genicam.fetch_timeout_s,
            frame_timeout_s=genicam.frame_timeout_s,
            buffers=genicam.buffers,
            reconnect_backoff_max_s=genicam.reconnect_backoff_max_s,
            start_timeout_s=genicam.start_timeout_s,
            **extra,
        )


def producer_files(
    configured: tuple[Path, ...], environ: Mapping[str, str] | None = None
) -> tuple[Path, ...]:
    """The .cti files to load: ``configured`` (files, folders), else the GENICAM_GENTL64_PATH folders."""
    environ = os.environ if environ is None else environ
    entries = list(configured)
    origin = "source.genicam.producers"
    if not entries:
        origin = GENTL_PATH_VARIABLE
        entries = [Path(part) for part in environ.get(GENTL_PATH_VARIABLE, "").split(os.pathsep) if part]
    files: list[Path] = []
    for entry in entries:
        if entry.is_dir():
            files += sorted(path for path in entry.iterdir() if path.suffix == ".cti" and path.is_file())
        elif entry.is_file():
            files.append(entry)
        elif origin != GENTL_PATH_VARIABLE:
            raise SourceError(f"GenTL producer {entry} does not exist", fix=f"correct {origin}")
    if not files:
        where = ", ".join(str(entry) for entry in entries) or f"{origin} (empty)"
        raise SourceError(
            f"no GenTL producer (.cti) found in {where}",
            fix=f"set source.genicam.producers to the camera vendor's .cti file, or {GENTL_PATH_VARIABLE} "
            "to its folder (the vendor's SDK installs one)",
        )
    return tuple(dict.fromkeys(files))
