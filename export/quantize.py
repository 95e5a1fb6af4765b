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
NETWORK_SCOPE = "/model/"  # node-name prefix of the traced INPFormer (ExportGraph.model)


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
    """FP16 weights and activations for the network's nodes; pre/post-processing stays float32.

    onnxruntime's converter inserts a Cast at every float32/float16 boundary, once per consumer, and
    appends them at the end of the node list; the duplicates are dropped and the graph re-sorted so
    the result passes the ONNX checker (SSA, topological order).
    """
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    fp32 = onnx.load(str(fp32_path))
    keep_float = float_node_names(fp32.graph, settings or QuantizeSettings(precision="fp16"))
    _unshare_float_initializers(fp32.graph, set(keep_float))
    model = convert_float_to_float16(fp32, keep_io_types=True, node_block_list=keep_float)
    _drop_duplicate_nodes(model.graph)
    _skip_float16_round_trips(model.graph, set(keep_float))
    OnnxModel.graph_topological_sort(model.graph, is_deterministic=True)
    onnx.save(model, str(out_path))


def float_node_names(graph, settings: QuantizeSettings) -> list[str]:
    """Nodes that stay float32 in an FP16 build: outside the network scope or matching an exclusion."""
    return [
        node.name
        for node in graph.node
        if not node.name.startswith(NETWORK_SCOPE)
        or any(pattern in node.name for pattern in settings.exclude_name_patterns or ())
    ]


def _unshare_float_initializers(graph, float_nodes: set[str]) -> None:
    """Give float32 nodes their own copy of each float initializer they share with network nodes.

    The exporter stores equal constants once; the converter turns a shared one into float16 and
    casts it back for the float32 readers, which rounds their constants (Gaussian weights, eps).
    """
    from onnx import TensorProto

    shared = {init.name: init for init in graph.initializer if init.data_type == TensorProto.FLOAT}
    network_reads = {name for node in graph.node if node.name not in float_nodes for name in node.input}
    copies = {}
    for node in graph.node:
        if node.name not in float_nodes:
            continue
        for index, name in enumerate(node.input):
            if name in shared and name in network_reads:
                if name not in copies:
                    copies[name] = graph.initializer.add()
                    copies[name].CopyFrom(shared[name])
                    copies[name].name = f"{name}_float32"
                node.input[index] = copies[name].name


def _cast_to(node) -> int | None:
    if node.op_type != "Cast":
        return None
    return next((attribute.i for attribute in node.attribute if attribute.name == "to"), None)


def _skip_float16_round_trips(graph, float_nodes: set[str]) -> None:
    """Wire float32 → float16 → float32 Cast pairs between two float32 nodes straight through.

    The converter wraps each kept-float node in Casts on its own, so a tensor passed from one
    float32 node to the next was rounded to float16 on the way; here it is passed as it was.
    """
    from onnx import TensorProto

    made_by = {output: node for node in graph.node for output in node.output}
    graph_outputs = {value.name for value in graph.output}
    direct = {}
    for node in graph.node:
        first = made_by.get(node.input[0]) if _cast_to(node) == TensorProto.FLOAT else None
        if first is None or _cast_to(first) != TensorProto.FLOAT16:
            continue
        source = made_by.get(first.input[0])
        if source is None or source.name not in float_nodes:
            continue
        if node.output[0] in graph_outputs:  # keep the output's name: the Cast becomes an Identity
            node.op_type, node.input[0] = "Identity", first.input[0]
            del node.attribute[:]
        else:
            direct[node.output[0]] = first.input[0]
    for node in graph.node:
        for index, name in enumerate(node.input):
            node.input[index] = direct.get(name, name)
    _drop_unused_casts(graph)


def _drop_unused_casts(graph) -> None:
    while True:
        used = {name for node in graph.node for name in node.input} | {value.name for value in graph.output}
        unused = [node for node in graph.node if node.op_type == "Cast" and node.output[0] not in used]
        if not unused:
            return
        for node in unused:
            graph.node.remove(node)


def _drop_duplicate_nodes(graph) -> None:
    """Remove byte-identical repeats of a node (same inputs, outputs, attributes)."""
    seen: set[bytes] = set()
    unique = []
    for node in graph.node:
        key = node.SerializeToString(deterministic=True)
        if key not in seen:
            seen.add(key)
            unique.append(node)
    del graph.node[:]
    graph.node.extend(unique)


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


def quantize_artifact(
    fp32_path: Path, out_path: Path, root: Path, categories: Sequence[str], settings: QuantizeSettings
) -> QuantizeOutcome:
    """Build, evaluate against FP32, gate, and write only on a pass."""
    from export.onnx_eval import (
        artifact_transform,
        calibration_feeds,
        check_test_sets,
        evaluate_artifact,
        open_artifact,
    )

    meta = open_artifact(Path(fp32_path)).info.meta  # a contract-breaking artifact stops here
    transform = artifact_transform(meta)
    check_test_sets(root, categories, transform)  # and a missing test set, before any work
    settings = resolve_keep_float(settings, meta.encoder)
    with tempfile.TemporaryDirectory(prefix="inp-quantize-") as tmp:
        candidate = Path(tmp) / f"candidate-{settings.precision}.onnx"
        if settings.precision == "int8":
            feeds = calibration_feeds(root, categories, transform, settings.calibration_count)
            build_int8(fp32_path, candidate, feeds, settings)
        else:
            build_fp16(fp32_path, candidate, settings)
        fp32_metrics = evaluate_artifact(fp32_path, root, categories)
        quantized_metrics = evaluate_artifact(candidate, root, categories)
        gate = accuracy_gate(fp32_metrics["mean"], quantized_metrics["mean"], settings.max_drop_points)
        written = set_precision(candidate, settings.precision, out_path) if gate.passed else None
    return QuantizeOutcome(gate, fp32_metrics, quantized_metrics, written)
