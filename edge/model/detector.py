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
class DetectorSettings:
    roi: Roi | None = None  # None: the whole frame
    fit: str = "stretch"  # stretch | letterbox (edge/model/preprocess.py)
    want_features: bool = False  # keep patch_features (few-shot memory scoring)


class Detector:
    """Runs one loaded model on frames; not thread-safe (one inspect thread owns it)."""

    def __init__(self, loaded: LoadedModel, settings: DetectorSettings = DetectorSettings()) -> None:
        self.loaded = loaded
        self.settings = settings
        self._preprocess = loaded.info.meta.preprocess
        self._crop_px = loaded.info.meta.crop_px

    def infer(self, frame: Frame) -> Inference:
        started_ns = time.perf_counter_ns()
        model_input, geometry = preprocess_frame(
            frame.image,
            resize_px=self._preprocess.resize_px,
            crop_px=self._crop_px,
            roi=self.settings.roi,
            fit=self.settings.fit,
        )
        preprocessed_ns = time.perf_counter_ns()
        outputs = run_model(self.loaded, model_input)
        done_ns = time.perf_counter_ns()
        features = outputs.get(c.OUTPUT_PATCH_FEATURES) if self.settings.want_features else None
        return Inference(
            anomaly_map=outputs[c.OUTPUT_ANOMALY_MAP][0],
            raw_score=float(outputs[c.OUTPUT_PRED_SCORE][0]),
            geometry=geometry,
            patch_features=None if features is None else features[0],
            preprocess_ms=(preprocessed_ns - started_ns) / 1e6,
            model_ms=(done_ns - preprocessed_ns) / 1e6,
        )


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
