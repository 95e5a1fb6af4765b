"""What ``inp-edge enroll --images`` and ``inp-edge calibrate`` share: a station's model, off-line.

``add_station_arguments`` adds ``--model``, ``--config`` and ``--state-dir``; ``resolve_station``
resolves them (an option wins over the station config's value); ``open_detector`` opens the model
the way the service does (the config's providers and CPU-fallback rule when a config is given), and builds a
``Detector`` with the station's region of interest and fit, so a folder image is pre-processed to
the grey level as a camera frame of that station would be. ``infer_folder`` runs it on image files
with a progress bar on stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.errors import ConfigError, DataError, SourceError

if TYPE_CHECKING:  # the parser imports this module: numpy, OpenCV and the model code load when used
    import numpy as np

    from edge.model.contract_check import ModelInfo
    from edge.model.detector import Detector, Inference


@dataclass(frozen=True)
class ImageFile:
    path: Path
    label: str  # the path relative to the folder given, for reports


@dataclass(frozen=True)
class Station:
    """Where the model and the products are (resolved from the options, nothing opened yet)."""

    model_path: Path
    state_dir: Path
    config: Any = None  # the StationConfig when --config was given


def add_station_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        metavar="MODEL.onnx",
        type=Path,
        help="the exported model (default: model.path of --config)",
    )
    parser.add_argument(
        "--config",
        metavar="STATION.yaml",
        type=Path,
        help="the station config: its model, state dir, region of interest and fit are used",
    )
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        type=Path,
        help="the station's state dir; products live in DIR/products (default: state_dir of --config)",
    )


def resolve_station(args: argparse.Namespace) -> Station:
    """The model file and state dir from the options, else from ``--config`` (cheap: nothing opened)."""
    config = None
    if args.config is not None:
        from edge.config import load_config

        config = load_config(args.config)
    model_path = args.model or (config.model.path if config else None)
    state_dir = args.state_dir or (config.state_dir if config else None)
    if model_path is None:
        raise ConfigError("no model given", fix="pass --model MODEL.onnx, or --config STATION.yaml")
    if state_dir is None:
        raise ConfigError(
            "no state dir given (products are kept in STATE_DIR/products)",
            fix="pass --state-dir DIR (the station's state_dir), or --config STATION.yaml",
        )
    return Station(Path(model_path), Path(state_dir), config)


def open_detector(station: Station, *, want_features: bool) -> Detector:
    """The model opened as the service opens it, with the station's region of interest and fit."""
    from edge.model.detector import Detector, DetectorSettings

    config = station.config
    if config is not None:
        from edge.station_model import load_model

        loaded = load_model(replace(config, model=replace(config.model, path=station.model_path)))
        return Detector(loaded, DetectorSettings(config.inspection.roi, config.inspection.fit, want_features))
    from edge.model.session import SessionSettings, open_session

    loaded = open_session(station.model_path, SessionSettings(warmup_runs=1))
    return Detector(loaded, DetectorSettings(want_features=want_features))


def check_patch_features(info: ModelInfo, fusion: str) -> None:
    """Refuse a memory fusion with a model that has no ``patch_features`` output (before any run)."""
    from edge.model import contract as c

    if fusion != "inp" and c.OUTPUT_PATCH_FEATURES not in info.optional_outputs:
        raise ConfigError(
            f"model {info.path} ({info.model_id}) has no {c.OUTPUT_PATCH_FEATURES} output, "
            f"and fusion {fusion!r} scores with the few-shot memory",
            fix="use a model exported with patch_features (inp-export export), or --fusion inp",
        )


def list_images(folder: Path, *, what: str, subfolders: bool) -> list[ImageFile]:
    """Image files of ``folder`` in natural name order ("part2" before "part10").

    With ``subfolders`` a folder that holds only subfolders of images (e.g. MVTec's test/crack,
    test/scratch) gives all of them; without, a folder must hold its images itself.
    """
    from edge.camera.replay import list_replay_images

    try:
        found = list_replay_images(folder)
    except SourceError as exc:
        raise DataError(f"{what} {exc.message.removeprefix('replay folder ')}", fix=exc.fix) from None
    if not subfolders and any(label is not None for _, label in found):
        raise DataError(
            f"{what} {folder} holds subfolders, not images",
            fix="point at the folder that holds the good parts' images themselves (e.g. train/good)",
        )
    return [ImageFile(path, path.relative_to(folder).as_posix()) for path, _ in found]


def read_image(file: ImageFile) -> np.ndarray:
    """uint8 H×W or H×W×3 RGB pixels of an image file; a file that cannot be used is a DataError."""
    import cv2

    from edge.camera.replay import UnsupportedImage, to_frame_pixels

    raw = cv2.imread(str(file.path), cv2.IMREAD_UNCHANGED)
    try:
        if raw is None:
            raise UnsupportedImage("OpenCV could not decode it (corrupt, truncated or not an image)")
        return to_frame_pixels(raw)
    except UnsupportedImage as exc:
        raise DataError(f"image {file.path}: {exc}", fix="replace or remove that file") from None


def infer_folder(detector: Detector, files: Sequence[ImageFile], *, desc: str) -> Iterator[Inference]:
    """The model's inference of each file, in order, with a progress bar on stderr."""
    from tqdm import tqdm

    from edge.camera.frame import Frame, now_ns

    with tqdm(total=len(files), desc=desc, unit="image", file=sys.stderr, dynamic_ncols=True) as bar:
        for index, file in enumerate(files):
            t_capture_ns, wall_time_ns = now_ns()
            frame = Frame(index, t_capture_ns, wall_time_ns, read_image(file), {"file": file.label})
            yield detector.infer(frame)
            bar.update(1)
