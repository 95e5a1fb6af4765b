"""Station config checks that look at more than one key: replay path, ROI against the frame, endpoints.

Each check reads the values ``edge/config.py`` already validated key by key (a flat mapping from key
path to value; a key that failed its own check is absent, and checks that need it are skipped) and
returns the issues it finds. The only I/O: the replay source's frame size (the first image of a
folder with ``cv2.imread``, a video's with ``cv2.VideoCapture``), so a region of interest that
does not fit is refused before the service starts, and a GenICam source's camera profile (checked
like a profile file; its Width and Height give the frame size).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.config_values import Endpoint, parse_endpoint
from edge.errors import ConfigError

MAX_IMAGES_TRIED = 10  # a replay skips files that do not decode; so does the frame-size check
LOCAL_ENDPOINTS = "tcp://127.0.0.1:PORT, ipc://PATH, inproc://NAME"


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a station config: where (dotted key path), what, and what is allowed there."""

    key_path: str  # e.g. "inspection.roi.width"; "(file)" for the file as a whole
    message: str
    allowed: str
    line: int | None = None  # 1-based line in the file, where known

    def __str__(self) -> str:
        text = f"{self.key_path}: {self.message}"
        if self.allowed:
            text += f" (allowed: {self.allowed})"
        return text if self.line is None else f"{text} [line {self.line}]"


def issues_error(what: str, path: object, issues: list[ConfigIssue], reference: str) -> ConfigError:
    """One ``ConfigError`` listing every issue of a file, with the check command as the fix."""
    listing = "\n".join(f"  {issue}" for issue in issues)
    return ConfigError(
        f"{what} {path} has {len(issues)} problem(s):\n{listing}",
        fix=f"correct them (reference: {reference}) and run `inp-edge check-config {path}`",
    )


def unknown_key(section: str, name: Any, names: Sequence[str], elsewhere: Sequence[str] = ()) -> ConfigIssue:
    """The issue of a key ``section`` does not have: the nearest name there, else where it belongs.

    ``elsewhere``: full paths of keys with this name in other sections (a station config's schema knows
    them; a camera profile has none).
    """
    path = f"{section}.{name}" if section else str(name)
    close = difflib.get_close_matches(str(name), list(names), n=1, cutoff=0.6)
    hint = ""
    if close:
        hint = f"; did you mean {section + '.' if section else ''}{close[0]}?"
    elif elsewhere:
        where = elsewhere[0].rpartition(".")[0] or "the top level"
        hint = f"; did you mean {elsewhere[0]}? (it belongs in {where})"
    return ConfigIssue(path, f"unknown key{hint}", "keys here: " + ", ".join(names))


def cross_checks(values: Mapping[str, Any]) -> list[ConfigIssue]:
    """Every issue between keys, given the values that passed their own checks."""
    issues, frame_hw = check_source(values)
    issues += check_roi(values, frame_hw)
    issues += check_endpoints(values)
    return issues


def check_source(values: Mapping[str, Any]) -> tuple[list[ConfigIssue], tuple[int, int] | None]:
    """Issues of the source and, where they can be known cheaply, the frame's (height, width)."""
    kind = values.get("source.kind")
    if kind == "generated" and "source.size_px" in values:
        side = values["source.size_px"]
        return [], (side, side)
    if kind == "genicam":
        return check_genicam_profile(values.get("source.genicam.profile"))
    if kind != "replay" or "source.path" not in values:
        return [], None
    path: Path | None = values["source.path"]
    allowed = "an existing folder of images or video file"
    if path is None:
        return [ConfigIssue("source.path", "is required when source.kind is replay", allowed)], None
    if not path.exists():
        return [ConfigIssue("source.path", f"{path} does not exist", allowed)], None
    frame_hw, problem = replay_frame_size(path)
    if problem:
        return [ConfigIssue("source.path", problem, allowed)], None
    return [], frame_hw


def check_genicam_profile(path: Path | None) -> tuple[list[ConfigIssue], tuple[int, int] | None]:
    """Issues of the camera profile file (each under source.genicam.profile) and the frame size it sets."""
    from edge.camera.profile import check_profile_file

    if path is None:
        return [], None
    profile, found = check_profile_file(path)
    if profile is None:
        allowed = "a valid camera profile (docs/cameras.md)"
        return [ConfigIssue("source.genicam.profile", f"{path}: {issue}", allowed) for issue in found], None
    size = {write.node: write.value for write in profile.nodes if write.node in ("Width", "Height")}
    if isinstance(size.get("Width"), int) and isinstance(size.get("Height"), int):
        return [], (size["Height"], size["Width"])
    return [], None


def replay_frame_size(path: Path) -> tuple[tuple[int, int] | None, str | None]:
    """((height, width), None) of what a replay of ``path`` delivers first, or (None, the problem).

    The same rules as the replay source (edge/camera/replay.py): a folder's images in replay order
    (the first one that decodes gives the size), or a video file by its suffix.
    """
    from edge.camera.replay import IMAGE_SUFFIXES, VIDEO_SUFFIXES, list_replay_images
    from edge.errors import SourceError

    if path.is_dir():
        try:
            images = [image for image, _ in list_replay_images(path)]
        except SourceError as exc:
            return None, exc.message
        for image in images[:MAX_IMAGES_TRIED]:
            size = _image_size(image)
            if size is not None:
                return size, None
        return None, f"none of the first {MAX_IMAGES_TRIED} images in {path} can be read"
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return None, f"{path} is one image; replay takes a folder of images or a video file"
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        return None, f"{path} is neither a folder nor a video ({', '.join(VIDEO_SUFFIXES)})"
    return _video_size(path)


def _image_size(path: Path) -> tuple[int, int] | None:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return None if image is None else (int(image.shape[0]), int(image.shape[1]))


def _video_size(path: Path) -> tuple[tuple[int, int] | None, str | None]:
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if not capture.isOpened() or width <= 0 or height <= 0:
            return None, f"{path} cannot be opened as a video"
        return (height, width), None
    finally:
        capture.release()


def check_roi(values: Mapping[str, Any], frame_hw: tuple[int, int] | None) -> list[ConfigIssue]:
    """The region of interest must lie inside the frame (when the frame size is known).

    Each axis is checked on its own, so a broken height does not hide an x + width past the edge.
    """
    if frame_hw is None:
        return []
    frame_h, frame_w = frame_hw
    frame = f"the {frame_w}x{frame_h} px frame"
    issues = []
    for start_name, size_name, limit in (("x", "width", frame_w), ("y", "height", frame_h)):
        start = values.get(f"inspection.roi.{start_name}")
        size = values.get(f"inspection.roi.{size_name}")
        if start is None or size is None:  # no ROI, or a value that failed its own check
            continue
        if start >= limit:
            where, message, allowed = start_name, f"{start} is outside {frame}", f"0..{limit - 1}"
        elif start + size > limit:
            where, allowed = size_name, f"1..{limit - start}"
            message = f"{start_name} + {size_name} = {start + size} goes past {frame}"
        else:
            continue
        issues.append(ConfigIssue(f"inspection.roi.{where}", message, allowed))
    return issues


def check_endpoints(values: Mapping[str, Any]) -> list[ConfigIssue]:
    """Publish and control must not share an endpoint; a remote control socket needs a guard."""
    issues = []
    publish_text, control_text = values.get("publish.endpoint"), values.get("control.endpoint")
    publish = parse_endpoint(publish_text) if publish_text else None
    control = parse_endpoint(control_text) if control_text else None
    if publish and control and _same_socket(publish, control):
        issues.append(
            ConfigIssue(
                "control.endpoint",
                f"{control_text} is the same socket as publish.endpoint ({publish_text}); each needs its own",
                "an endpoint (tcp: a port) different from publish.endpoint",
            )
        )
    guarded = values.get("control.allow_remote") or values.get("control.curve_secret_key_file")
    if control and not control.is_local() and not guarded:
        issues.append(
            ConfigIssue(
                "control.endpoint",
                f"{control_text} accepts requests from other machines; set control.allow_remote: true "
                "or control.curve_secret_key_file",
                f"a local endpoint ({LOCAL_ENDPOINTS}) unless allow_remote or CURVE",
            )
        )
    return issues


def _same_socket(first: Endpoint, second: Endpoint) -> bool:
    if first.transport != second.transport:
        return False
    if first.transport != "tcp":
        return first.address == second.address
    if first.port is None or first.port != second.port:
        return False  # "*" picks a free port each time
    wildcard = {"*", "0.0.0.0", "[::]"}
    return first.address == second.address or first.address in wildcard or second.address in wildcard
