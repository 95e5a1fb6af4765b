"""Open a frame source by kind: the one place that maps settings to a source.

Kinds (``SOURCE_KINDS``):

- ``generated``: a drawn line (``GeneratedLine``): parts, defect_fraction, size_px, seed, rate_pps.
- ``replay``: path, loop, rate_pps. A folder replays its images (``FolderReplay``); a file with a
  video suffix (``VIDEO_SUFFIXES``) replays the video (``VideoReplay``).
- ``genicam``: a line camera through harvesters (``GenICamSource``): genicam, a ``GenICamSettings``
  (the station config's ``source.genicam`` section is one).

``open_source(kind, **settings)`` refuses a setting its kind does not use, naming it.
``open_source_from_config(config)`` reads the attributes kind, rate_pps, parts, defect_fraction,
size_px, seed, path, loop and genicam of any object (the station config's ``SourceConfig``) and passes on
those its kind uses (``None`` or absent: the source's default); it does not import the config module.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.camera.frame import FrameSource
from edge.camera.generated import GeneratedLine
from edge.camera.replay import IMAGE_SUFFIXES, VIDEO_SUFFIXES, FolderReplay, VideoReplay
from edge.errors import ConfigError, SourceError

SOURCE_KINDS = ("generated", "replay", "genicam")

# The settings each kind takes (beyond ``kind``), in the order a person would read them.
KIND_SETTINGS: dict[str, tuple[str, ...]] = {
    "generated": ("parts", "defect_fraction", "size_px", "seed", "rate_pps"),
    "replay": ("path", "loop", "rate_pps"),
    "genicam": ("genicam",),
}


def _open_generated(settings: dict[str, Any]) -> FrameSource:
    return GeneratedLine(**settings)


def _open_replay(settings: dict[str, Any]) -> FrameSource:
    raw_path = settings.pop("path", None)
    if raw_path is None or str(raw_path) == "":
        raise ConfigError(
            "source kind 'replay' needs a path", fix="set source.path to a folder of images or a video file"
        )
    path = Path(raw_path)
    if path.is_dir():
        return FolderReplay(path, **settings)
    if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
        return VideoReplay(path, **settings)
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        raise SourceError(
            f"replay path {path} is one image, not a folder or a video",
            fix=f"set source.path to the folder that holds it ({path.parent})",
        )
    if path.is_file():
        raise SourceError(
            f"replay path {path} is neither a folder nor a video ({', '.join(VIDEO_SUFFIXES)})",
            fix="set source.path to a folder of images or a video file",
        )
    raise SourceError(
        f"replay path {path} does not exist", fix="set source.path to a folder of images or a video file"
    )


def _open_genicam(settings: dict[str, Any]) -> FrameSource:
    import logging

    from edge.camera.genicam import GenICamSource
    from edge.camera.genicam_settings import GenICamSettings, ProcessOptions

    given = settings.get("genicam")
    if not isinstance(given, GenICamSettings):
        raise ConfigError("source kind 'genicam' needs its settings", fix="set the source.genicam section")
    level = logging.getLevelName(logging.getLogger("inp_edge").getEffectiveLevel())
    return GenICamSource(given, ProcessOptions(log_level=level))


_OPENERS: dict[str, Callable[[dict[str, Any]], FrameSource]] = {
    "generated": _open_generated,
    "replay": _open_replay,
    "genicam": _open_genicam,
}


def open_source(kind: str, **settings: Any) -> FrameSource:
    """A source of ``kind`` made from its settings (see the module docstring); not opened yet."""
    if kind not in _OPENERS:
        raise ConfigError(f"unknown source kind {kind!r}", fix=f"choose one of {', '.join(SOURCE_KINDS)}")
    unused = sorted(set(settings) - set(KIND_SETTINGS[kind]))
    if unused:
        takes = ", ".join(KIND_SETTINGS[kind]) or "no settings"
        raise ConfigError(
            f"source kind {kind!r} does not take {', '.join(unused)}", fix=f"remove them; it takes {takes}"
        )
    return _OPENERS[kind](dict(settings))


def open_source_from_config(config: Any) -> FrameSource:
    """A source from a config value with the attributes named in the module docstring."""
    kind = config.kind
    values = {key: getattr(config, key, None) for key in KIND_SETTINGS.get(kind, ())}
    return open_source(kind, **{key: value for key, value in values.items() if value is not None})
