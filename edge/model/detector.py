"""Frame → Inference: the station's region of interest, THE pre-processing, one model run.

The artifact's own metadata says how to pre-process (``ModelMetadata.preprocess``); the station
adds only the region of interest and how a non-square region becomes the model's square
(``fit``). ``check_providers`` makes a silent fallback to the CPU a start-up error unless the
station allows it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge.camera.frame import Frame
from edge.errors import ConfigError
from edge.model import contract as c
from edge.model.preprocess import Geometry, Roi, preprocess_frame
from edge.model.session import CPU, LoadedModel, run_model


@dataclass(frozen=True)
class Inference:
    """What the model says about one frame."""

    anomaly_map: np.ndarray  # (S, S) float32, model-input pixels; higher = more anomalous
    raw_score: float  # pred_score: mean of the top 1 % of the map
    geometry: Geometry  # model-input pixels → frame pixels
    patch_features: np.ndarray | None  # (N, C) when the model has them and they were asked for
    preprocess_ms: float
    model_ms: float


@dataclass(frozen=True)
class Prepared:
    """A frame made ready for the model."""

    model_input: np.ndarray  # uint8 (S, S, 3) RGB
    geometry: Geometry
    preprocess_ms: float


@dataclass(frozen=True)
class DetectorSettings:
    roi: Roi | None = None  # None: the whole frame
    fit: str = "stretch"  # stretch | letterbox (edge/model/preprocess.py)
    want_features: bool = False  # keep patch_features (few-shot memory scoring)


class Detector:
    """Runs one loaded model on frames: ``prepare`` may run on another thread than ``run``."""

    def __init__(self, loaded: LoadedModel, settings: DetectorSettings = DetectorSettings()) -> None:
        self.loaded = loaded
        self.settings = settings
        self._preprocess = loaded.info.meta.preprocess
        self._crop_px = loaded.info.meta.crop_px
        self.has_patch_features = c.OUTPUT_PATCH_FEATURES in loaded.info.optional_outputs
        with_features = (c.OUTPUT_PATCH_FEATURES,) if self.has_patch_features else ()
        self._outputs = {False: tuple(c.REQUIRED_OUTPUTS), True: (*c.REQUIRED_OUTPUTS, *with_features)}

    def prepare(self, frame: Frame) -> Prepared:
        """ROI and THE pre-processing (thread-safe: the acquire thread may do it for the next part)."""
        started_ns = time.perf_counter_ns()
        model_input, geometry = preprocess_frame(
            frame.image,
            resize_px=self._preprocess.resize_px,
            crop_px=self._crop_px,
            roi=self.settings.roi,
            fit=self.settings.fit,
        )
        return Prepared(model_input, geometry, (time.perf_counter_ns() - started_ns) / 1e6)

    def run(self, prepared: Prepared, *, features: bool | None = None) -> Inference:
        """The model on a prepared input (one thread at a time).

        ``features``: fetch ``patch_features`` for this part (None: ``settings.want_features``); asked
        per part, so they are copied out only while a product's memory or an enrollment needs them.
        """
        want = self.settings.want_features if features is None else bool(features)
        started_ns = time.perf_counter_ns()
        outputs = run_model(self.loaded, prepared.model_input, self._outputs[want])
        model_ms = (time.perf_counter_ns() - started_ns) / 1e6
        features_out = outputs.get(c.OUTPUT_PATCH_FEATURES) if want else None
        return Inference(
            anomaly_map=outputs[c.OUTPUT_ANOMALY_MAP][0],
            raw_score=float(outputs[c.OUTPUT_PRED_SCORE][0]),
            geometry=prepared.geometry,
            patch_features=None if features_out is None else features_out[0],
            preprocess_ms=prepared.preprocess_ms,
            model_ms=model_ms,
        )

    def infer(self, frame: Frame) -> Inference:
        return self.run(self.prepare(frame))


def check_providers(requested: Sequence[str], in_use: Sequence[str], *, allow_cpu_fallback: bool) -> None:
    """Refuse a session that silently fell back from the accelerators asked for (pure).

    ``requested`` is the resolved list (full provider names) the session was opened with.
    onnxruntime drops a provider it cannot initialise (no GPU, missing CUDA libraries) with only a
    warning; a station that asked for TensorRT and got the CPU would miss every deadline.
    """
    missing = [name for name in requested if name != CPU and name not in in_use]
    if missing and not allow_cpu_fallback:
        raise ConfigError(
            f"execution provider(s) {', '.join(missing)} were asked for but onnxruntime runs the model "
            f"on {', '.join(in_use) or 'nothing'} (the GPU or its libraries could not be initialised)",
            fix="check the GPU driver and the CUDA / TensorRT libraries (see docs/deploy.md), or set "
            "model.allow_cpu_fallback: true in the station config to accept the slower CPU",
        )
