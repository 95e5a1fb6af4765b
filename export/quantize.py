"""FP16 and INT8 (static QDQ) variants of an exported artifact, behind an accuracy gate.

The quantized model is built in a temporary folder, evaluated against the FP32 artifact on a labelled
set, and written to its destination only when no image or pixel AUROC falls by more than the bound.
Only the network is quantized: the in-graph pre-processing and the anomaly-map post-processing (cosine
maps, resizes, Gaussian, top-k) stay in float, since they are cheap and precision-sensitive.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from edge.errors import ConfigError
from edge.model import contract
from edge.model.session import LoadedModel
from export.quantize_fp16 import NETWORK_SCOPE, write_fp16

_ADVICE = "Please consider"  # onnxruntime's advice to run its model pre-processing first, on the root logger


class _DropAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_ADVICE)


@contextlib.contextmanager
def _without_preprocessing_advice():
    """Silence onnxruntime's "consider pre-processing" warning: its shape-inference pass is what
    export's BASIC optimisation already did (static shapes), so the advice is noise here."""
    advice_filter = _DropAdvice()
    root = logging.getLogger()
    root.addFilter(advice_filter)
    try:
        yield
    finally:
        root.removeFilter(advice_filter)


PRECISIONS = ("int8", "fp16")
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


@dataclass(frozen=True)
class QuantizeSettings:
    precision: str = "int8"
    calibration_method: str = "minmax"
    per_channel: bool = True
    calibration_count: int = 32
    op_types: tuple[str, ...] = ("Conv", "MatMul", "Gemm")
    # Substrings of node names kept in float; None = the measured default for the model's encoder
    # (DEFAULT_KEEP_FLOAT), () = quantize every network node.
    exclude_name_patterns: tuple[str, ...] | None = None
    weights_only_matmul: bool = False  # quantize only MatMuls with a constant (weight) operand
    # Matrix products hand float results to the float ops after them (GELU, LayerNorm, residual adds)
    # instead of requantizing: measured 1.35× → 1.7× INT8 speed-up on the EfficientNet-Lite0 model.
    float_output_ops: tuple[str, ...] = ("Gemm", "MatMul")
    max_drop_points: float = 0.5  # largest allowed AUROC drop, in percentage points

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r} is not one of {PRECISIONS}")
        if self.calibration_method not in CALIBRATION_METHODS:
            raise ValueError(
                f"calibration method {self.calibration_method!r} is not one of {CALIBRATION_METHODS}"
            )


# Measured on bottle (EfficientNet-Lite0, 256 px, INT8 per-channel MinMax): quantizing the encoder's
# convolutions cost 1.9 image-AUROC points (2.5 with percentile calibration) and bought almost no
# speed (its convolutions are ~10 % of the FP32 time); the quantized INP head alone changed no
# AUROC by more than 0.01 point. ViT encoders are most of their model's work and stay quantized.
DEFAULT_KEEP_FLOAT: dict[str, tuple[str, ...]] = {"efficientnet_lite0": ("/model/encoder/",)}


def resolve_keep_float(settings: QuantizeSettings, encoder: str) -> QuantizeSettings:
    """Fill in the encoder's default keep-float patterns when the settings leave them open."""
    if settings.exclude_name_patterns is not None:
        return settings
    return replace(settings, exclude_name_patterns=DEFAULT_KEEP_FLOAT.get(encoder, ()))


@dataclass(frozen=True)
class GateResult:
    passed: bool
    drops_points: dict[str, float] = field(default_factory=dict)  # metric → FP32 minus quantized, in points
    max_drop_points: float = 0.5

    def describe(self) -> str:
        parts = ", ".join(f"{name} {drop:+.2f}" for name, drop in self.drops_points.items())
        verdict = "within" if self.passed else "OVER"
        return f"AUROC drop vs FP32 (points): {parts}; {verdict} the bound of {self.max_drop_points:.2f}"


GATED_METRICS = (("image", "auroc"), ("pixel", "auroc"))
GATE_TOLERANCE_POINTS = 1e-9  # float rounding: a drop equal to the bound passes


def accuracy_gate(fp32: dict, quantized: dict, max_drop_points: float) -> GateResult:
    """Pure: compare mean metrics; the drop of each gated metric must not exceed the bound."""
    drops = {}
    for level, name in GATED_METRICS:
        if fp32.get(level) and quantized.get(level):
            drops[f"{level}_{name}"] = 100.0 * (fp32[level][name] - quantized[level][name])
    passed = all(drop <= max_drop_points + GATE_TOLERANCE_POINTS for drop in drops.values())
    return GateResult(passed=passed, drops_points=drops, max_drop_points=max_drop_points)


def network_nodes(model_path: Path, settings: QuantizeSettings) -> list[str]:
    """Names of the nodes to quantize: the network's matrix ops, minus the excluded patterns."""
    import onnx

    graph = onnx.load(str(model_path)).graph
    return [
        node.name
        for node in graph.node
        if node.op_type in settings.op_types
        and node.name.startswith(NETWORK_SCOPE)
        and not any(pattern in node.name for pattern in settings.exclude_name_patterns or ())
    ]


class _FeedReader:
    """onnxruntime's CalibrationDataReader protocol over an iterator of input feeds."""

    def __init__(self, feeds: Iterator[dict]) -> None:
        self._feeds = iter(feeds)

    def get_next(self) -> dict | None:
        return next(self._feeds, None)

    def rewind(self) -> None:  # pragma: no cover - only used by some calibrators
        raise RuntimeError("calibration feeds cannot be rewound")


def build_int8(fp32_path: Path, out_path: Path, feeds: Iterator[dict], settings: QuantizeSettings) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    nodes = network_nodes(fp32_path, settings)
    if not nodes:  # onnxruntime reads an empty list as "quantize every node", post-processing included
        raise ConfigError(
            f"{fp32_path}: no {'/'.join(settings.op_types)} node under {NETWORK_SCOPE!r} is left to quantize "
            f"(keep-float patterns {list(settings.exclude_name_patterns or ())})",
            fix="drop some --keep-float patterns",
        )
    with _without_preprocessing_advice():
        quantize_static(
            str(fp32_path),
            str(out_path),
            _FeedReader(feeds),
            quant_format=QuantFormat.QDQ,
            nodes_to_quantize=nodes,
            per_channel=settings.per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=methods[settings.calibration_method],
            extra_options={
                "ActivationSymmetric": False,
                "WeightSymmetric": True,
                "MatMulConstBOnly": settings.weights_only_matmul,
                "OpTypesToExcludeOutputQuantization": list(settings.float_output_ops),
            },
        )


def build_fp16(fp32_path: Path, out_path: Path, settings: QuantizeSettings | None = None) -> None:
    """FP16 weights and activations for the network's nodes; pre/post-processing stays float32
    (export/quantize_fp16.py), as do the nodes matching ``settings.exclude_name_patterns``."""
    patterns = (settings.exclude_name_patterns if settings is not None else None) or ()
    write_fp16(fp32_path, out_path, patterns)


def set_precision(model_path: Path, precision: str, out_path: Path) -> Path:
    """Stamp the precision into the metadata and write the artifact atomically."""
    import onnx

    from export.onnx_export import IR_VERSION, save_model_atomic

    model = onnx.load(str(model_path))
    model.ir_version = min(model.ir_version, IR_VERSION) if model.ir_version else IR_VERSION
    for entry in model.metadata_props:
        if entry.key == contract.META_PRECISION:
            entry.value = precision
    onnx.checker.check_model(model)
    return save_model_atomic(model, out_path)


@dataclass(frozen=True)
class QuantizeOutcome:
    gate: GateResult
    fp32_metrics: dict
    quantized_metrics: dict
    written: Path | None
    settings: QuantizeSettings  # as used: the encoder's keep-float default filled in


def quantize_artifact(
    fp32: Path | LoadedModel,
    out_path: Path,
    root: Path,
    categories: Sequence[str],
    settings: QuantizeSettings,
) -> QuantizeOutcome:
    """Build, evaluate against FP32 (both scored in one pass over the test set), gate, and write only
    on a pass. ``fp32`` is the artifact's path, or the artifact already opened with ``open_artifact``."""
    from export.onnx_eval import (
        artifact_transform,
        calibration_feeds,
        check_test_sets,
        evaluate_artifacts,
        open_artifact,
    )

    loaded = fp32 if isinstance(fp32, LoadedModel) else open_artifact(Path(fp32))  # contract checked
    fp32_path, meta = loaded.info.path, loaded.info.meta
    transform = artifact_transform(meta)
    check_test_sets(root, categories, transform)  # a missing test set stops before any work
    settings = resolve_keep_float(settings, meta.encoder)
    with tempfile.TemporaryDirectory(prefix="inp-quantize-") as tmp:
        candidate = Path(tmp) / f"candidate-{settings.precision}.onnx"
        if settings.precision == "int8":
            feeds = calibration_feeds(root, categories, transform, settings.calibration_count)
            build_int8(fp32_path, candidate, feeds, settings)
        else:
            build_fp16(fp32_path, candidate, settings)
        fp32_metrics, quantized_metrics = evaluate_artifacts(
            [loaded, open_artifact(candidate)], root, categories
        )
        gate = accuracy_gate(fp32_metrics["mean"], quantized_metrics["mean"], settings.max_drop_points)
        written = set_precision(candidate, settings.precision, out_path) if gate.passed else None
    return QuantizeOutcome(gate, fp32_metrics, quantized_metrics, written, settings)
