"""Open a model with onnxruntime: provider choice, provider options, contract check, warm-up.

Decisions (which providers, which options) are pure functions tested with tables; ``open_session``
does the I/O. onnxruntime is imported inside the functions that need it, so importing this module
is cheap (``inp-edge --help`` stays fast).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import ConfigError, ModelInputError, ModelLoadError, ModelRunError
from edge.model import contract as c
from edge.model.contract_check import ModelInfo, check_contract
from edge.model.onnx_file import read_metadata_props

TENSORRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
PROVIDER_ORDER = (TENSORRT, CUDA, CPU)
SHORT_NAMES = {"tensorrt": TENSORRT, "trt": TENSORRT, "cuda": CUDA, "cpu": CPU}
PROVIDER_PACKAGES = {
    TENSORRT: "onnxruntime-gpu plus the TensorRT 10 libraries (on Jetson: the JetPack onnxruntime-gpu wheel)",
    CUDA: "onnxruntime-gpu (CUDA 12 and cuDNN 9 libraries; on Jetson: the JetPack onnxruntime-gpu wheel)",
    CPU: "onnxruntime",
}
GRAPH_OPTIMIZATIONS = ("disable", "basic", "extended", "all")


@dataclass(frozen=True)
class SessionSettings:
    """How to open a model; ``providers`` as the user wrote them ("auto", "cuda", full names)."""

    providers: tuple[str, ...] = ("auto",)
    intra_op_threads: int = 0  # 0 = onnxruntime's default (one per physical core)
    cache_dir: Path | None = None  # TensorRT engine cache; None = default_cache_dir()
    warmup_runs: int = 3
    graph_optimization: str = "all"  # disable | basic | extended | all
    # onnxruntime's intra-op threads spin-wait after each run (its default), keeping the cores busy for
    # a moment. Turning it off let the pipeline's other threads run sooner but made the model 7-10 %
    # slower and the whole pipeline ~6 % slower here (docs/benchmarks.md); kept on, switchable.
    spin_wait: bool = True
    device_id: int = 0


@dataclass(frozen=True)
class LoadedModel:
    """An open, checked and warmed-up model."""

    session: Any  # onnxruntime.InferenceSession
    info: ModelInfo
    providers_in_use: tuple[str, ...]
    load_s: float = 0.0  # session creation + contract check + warm-up


def resolve_providers(requested: Sequence[str] | str | None, available: Sequence[str]) -> list[str]:
    """Execution providers to ask onnxruntime for, best first.

    ``None``, ``[]`` or ``["auto"]``: the available ones in ``PROVIDER_ORDER``. Otherwise each name
    (short "tensorrt" / "cuda" / "cpu" or a full provider name) in the order given; one that is not
    available in this onnxruntime is a ``ConfigError`` naming what is available and the package.
    """
    names = _split_names(requested)
    if not names or names == ["auto"]:
        chosen = [name for name in PROVIDER_ORDER if name in available]
        if not chosen:
            raise ConfigError(
                f"no usable execution provider: onnxruntime offers {', '.join(available) or 'none'}",
                fix="install onnxruntime (CPU) or onnxruntime-gpu",
            )
        return chosen
    if "auto" in names:
        raise ConfigError(
            f"providers {names}: 'auto' cannot be combined with other providers", fix="use auto alone"
        )
    resolved: list[str] = []
    for name in names:
        full = _full_provider_name(name)
        if full not in available:
            package = PROVIDER_PACKAGES.get(full, "an onnxruntime build that includes it")
            raise ConfigError(
                f"execution provider '{name}' ({full}) is not available in this onnxruntime; "
                f"available: {', '.join(available) or 'none'}",
                fix=f"install {package} in place of onnxruntime, or use providers 'auto' or 'cpu'",
            )
        if full not in resolved:
            resolved.append(full)
    return resolved


def _split_names(requested: Sequence[str] | str | None) -> list[str]:
    if requested is None:
        return []
    items = [requested] if isinstance(requested, str) else list(requested)
    return [part.strip() for item in items for part in item.split(",") if part.strip()]


def _full_provider_name(name: str) -> str:
    if name.lower() in SHORT_NAMES:
        return SHORT_NAMES[name.lower()]
    if name.endswith("ExecutionProvider"):
        return name
    raise ConfigError(
        f"unknown execution provider '{name}'",
        fix=f"use auto, {', '.join(SHORT_NAMES)}, or a full name such as {CUDA}",
    )


def provider_options(
    providers: Sequence[str], *, precision: str, cache_dir: Path, device_id: int = 0
) -> list[tuple[str, dict[str, str]]]:
    """(provider, options) pairs for ``InferenceSession(providers=...)``.

    TensorRT: engine and timing caches under ``cache_dir/tensorrt`` (the first start builds the
    engine, minutes on a Jetson; later starts load it), FP16 kernels for an fp16 model and INT8
    for an int8 (QDQ) model. CUDA: onnxruntime's defaults on ``device_id``. Others: no options.
    """
    pairs: list[tuple[str, dict[str, str]]] = []
    for name in providers:
        options: dict[str, str] = {}
        if name == TENSORRT:
            trt_cache = str(cache_dir / "tensorrt")
            options = {
                "device_id": str(device_id),
                "trt_engine_cache_enable": "True",
                "trt_engine_cache_path": trt_cache,
                "trt_timing_cache_enable": "True",
                "trt_timing_cache_path": trt_cache,
            }
            if precision == "fp16":
                options["trt_fp16_enable"] = "True"
            if precision == "int8":
                options["trt_int8_enable"] = "True"
        elif name == CUDA:
            options = {"device_id": str(device_id)}
        pairs.append((name, options))
    return pairs


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$INP_EDGE_CACHE_DIR``, else ``$XDG_CACHE_HOME/inp-edge``, else ``~/.cache/inp-edge``."""
    env = os.environ if environ is None else environ
    if env.get("INP_EDGE_CACHE_DIR"):
        return Path(env["INP_EDGE_CACHE_DIR"])
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]) / "inp-edge"
    return Path.home() / ".cache" / "inp-edge"


def open_session(path: str | Path, settings: SessionSettings) -> LoadedModel:
    """Open ``path``, check it against the contract and warm it up with a zero image."""
    path = Path(path)
    start_s = time.perf_counter()
    metadata = read_metadata_props(path)  # missing / truncated / not ONNX → ModelLoadError
    precision = metadata.get(c.META_PRECISION, "fp32")
    session = create_session(path, settings, precision=precision)
    info = check_contract(session, path)
    loaded = LoadedModel(session, info, tuple(session.get_providers()))
    warm_up(loaded, settings.warmup_runs)
    return LoadedModel(session, info, loaded.providers_in_use, time.perf_counter() - start_s)


def create_session(
    model: str | Path | bytes,
    settings: SessionSettings,
    *,
    precision: str = "fp32",
    optimized_model_path: Path | None = None,
) -> Any:
    """THE onnxruntime session opener of the project (edge/ and export/ alike).

    ``model`` is a file or serialized bytes. Providers and their options come from ``settings``
    (``resolve_providers``, ``provider_options``); ``optimized_model_path`` makes onnxruntime write
    the graph after its optimisations (export/ uses it to fold the tracer's shape arithmetic).
    A file onnxruntime cannot load is a ``ModelLoadError`` naming it; no contract check here.
    """
    import onnxruntime as ort

    providers = resolve_providers(settings.providers, ort.get_available_providers())
    cache_dir = settings.cache_dir or default_cache_dir()
    if TENSORRT in providers:
        (cache_dir / "tensorrt").mkdir(parents=True, exist_ok=True)
    pairs = provider_options(
        providers, precision=precision, cache_dir=cache_dir, device_id=settings.device_id
    )
    options = session_options(settings)
    if optimized_model_path is not None:
        options.optimized_model_filepath = str(optimized_model_path)
    source = model if isinstance(model, bytes) else str(model)
    try:
        return ort.InferenceSession(source, sess_options=options, providers=pairs)
    except Exception as exc:  # onnxruntime raises its own exception types, all from pybind
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        name = "the in-memory model" if isinstance(model, bytes) else f"model {model}"
        raise ModelLoadError(
            f"onnxruntime cannot load {name}: {first_line}",
            fix="check that the file is a complete ONNX model from `inp-export export` (compare its sha256)",
        ) from None


def session_options(settings: SessionSettings) -> Any:
    """``onnxruntime.SessionOptions`` for the settings (threads, graph optimisation level)."""
    import onnxruntime as ort

    levels = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    if settings.graph_optimization not in levels:
        raise ConfigError(
            f"graph optimization {settings.graph_optimization!r} is not known",
            fix=f"use one of {', '.join(GRAPH_OPTIMIZATIONS)}",
        )
    if settings.intra_op_threads < 0:
        raise ConfigError(f"intra-op threads {settings.intra_op_threads} < 0", fix="use 0 (default) or more")
    options = ort.SessionOptions()
    options.graph_optimization_level = levels[settings.graph_optimization]
    options.intra_op_num_threads = settings.intra_op_threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if settings.spin_wait else "0")
    return options


def warm_up(loaded: LoadedModel, runs: int) -> None:
    """Run the model ``runs`` times on a zero image (first runs allocate and tune kernels)."""
    height, width = loaded.info.input_hw
    zeros = np.zeros((1, height, width, 3), dtype=np.uint8)
    for _ in range(runs):
        run_model(loaded, zeros)


def run_model(
    loaded: LoadedModel, image_rgb_u8: np.ndarray, outputs: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """Run one RGB uint8 image, (H, W, 3) or (1, H, W, 3) at the model's input size.

    ``outputs``: the output names to fetch (None: all); the device needs only the map and the score
    (patch features are 1 MB per part for the EfficientNet model, copied out for nothing otherwise).
    """
    height, width = loaded.info.input_hw
    if not isinstance(image_rgb_u8, np.ndarray):
        raise ModelInputError(
            f"model input must be a numpy array, got {type(image_rgb_u8).__name__}",
            fix="pass the preprocessed RGB image as a uint8 numpy array",
        )
    image = image_rgb_u8[None] if image_rgb_u8.ndim == 3 else image_rgb_u8
    if image.dtype != np.uint8 or image.shape != (1, height, width, 3):
        raise ModelInputError(
            f"model {loaded.info.model_id} needs a uint8 RGB image of shape ({height}, {width}, 3), "
            f"got {image_rgb_u8.dtype} {image_rgb_u8.shape}",
            fix=f"resize / crop to {height}x{width} and convert to uint8 RGB before running the model",
        )
    try:
        names = None if outputs is None else list(outputs)
        values = loaded.session.run(names, {c.INPUT_IMAGE: np.ascontiguousarray(image)})
    except Exception as exc:
        raise ModelRunError(
            f"onnxruntime failed running model {loaded.info.path}: {str(exc).strip()[:500]}",
            fix="check the providers (try --providers cpu) and the model with `inp-edge bench-model MODEL`",
        ) from None
    return dict(zip(loaded.info.outputs if outputs is None else outputs, values, strict=True))
