"""Settings of the GenICam source: plain frozen values (they travel to the camera process pickled).

``GenICamSettings`` is also the station config's ``source.genicam`` section: edge/config.py builds
it (with ``DeviceSelector`` and ``TriggerSettings`` for its ``device`` and ``trigger`` sections) and
every default comes from the schema (edge/config_schema.py); the meaning of every field is in
docs/config.md (``source.genicam.*``). ``ProcessOptions`` says how the camera process runs (not a
station config key). ``producer_files`` resolves the GenTL producer files: the configured files and
folders, else the folders listed in ``GENICAM_GENTL64_PATH``; each folder contributes its ``*.cti``
files in name order.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.config_schema import DEFAULTS as D
from edge.config_schema import TRIGGER_MODES
from edge.errors import SourceError

FREE_RUN, SOFTWARE, LINE = TRIGGER_MODES
GENTL_PATH_VARIABLE = "GENICAM_GENTL64_PATH"


@dataclass(frozen=True)
class DeviceSelector:
    """Which camera: every field set must match; none set = the only device found."""

    serial_number: str | None = D["source.genicam.device.serial_number"]
    id: str | None = D["source.genicam.device.id"]
    user_name: str | None = D["source.genicam.device.user_name"]
    index: int | None = D["source.genicam.device.index"]

    def describe(self) -> str:
        parts = [f"{name} {value!r}" for name, value in self._set().items()]
        return ", ".join(parts) if parts else "no selector (the only camera)"

    def _set(self) -> dict[str, Any]:
        return {name: value for name, value in vars(self).items() if value is not None}


@dataclass(frozen=True)
class TriggerSettings:
    mode: str = D["source.genicam.trigger.mode"]
    selector: str = D["source.genicam.trigger.selector"]
    source: str = D["source.genicam.trigger.source"]
    activation: str = D["source.genicam.trigger.activation"]
    delay_us: float = D["source.genicam.trigger.delay_us"]
    timeout_s: float = D["source.genicam.trigger.timeout_s"]


@dataclass(frozen=True)
class GenICamSettings:
    producers: tuple[Path, ...] = D["source.genicam.producers"]  # files or folders; () = GENICAM_GENTL64_PATH
    device: DeviceSelector = field(default_factory=DeviceSelector)
    profile: Path | None = D["source.genicam.profile"]
    trigger: TriggerSettings = field(default_factory=TriggerSettings)
    fetch_timeout_s: float = D["source.genicam.fetch_timeout_s"]
    frame_timeout_s: float = D["source.genicam.frame_timeout_s"]
    buffers: int = D["source.genicam.buffers"]
    reconnect_backoff_max_s: float = D["source.genicam.reconnect_backoff_max_s"]
    start_timeout_s: float = D["source.genicam.start_timeout_s"]


@dataclass(frozen=True)
class ProcessOptions:
    """How the camera process runs: its log level (the service's), and a hook the tests use."""

    log_level: str = "INFO"
    # Called in the camera process before the producer loads, as "module:function" (tests inject
    # faults at the producer's calls with it).
    process_hook: str = ""


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
