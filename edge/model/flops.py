"""Count the arithmetic of an ONNX graph's matrix products and convolutions.

Counted, at 2 FLOPs per multiply-accumulate, from the shapes onnx's shape inference gives:

- MatMul, MatMulInteger, QLinearMatMul: 2 · (elements of the output) · K
  (= 2·M·N·K per matrix, times the broadcast batch);
- Gemm: 2·M·N·K (the bias add is elementwise and not counted);
- Conv, ConvInteger, QLinearConv: 2 · Cout · (Cin / groups) · kh · kw · Hout · Wout (per image);
- ConvTranspose: 2 · Cin · (Cout / groups) · kh · kw · Hin · Win.

INT8 forms count the same as float ones (they do the same multiply-accumulates). A QDQ model
(DequantizeLinear → MatMul) counts as MatMul. Elementwise ops, softmax, normalisation, resize and
reductions are NOT counted: they are memory-bound and small next to the matrix work. Nodes inside
control-flow subgraphs are not counted either. Needs the ``onnx`` package (imported on use).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.errors import MissingDependencyError, ModelLoadError

NOTE = (
    "2 FLOPs per multiply-accumulate of MatMul / Gemm / Conv / ConvTranspose and their INT8 forms; "
    "elementwise ops, softmax, norms, resizes and reductions are not counted"
)
_MATMUL_A_INPUT = {"MatMul": 0, "MatMulInteger": 0, "QLinearMatMul": 0}
_CONV_W_INPUT = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3}
_STANDARD_DOMAINS = ("", "ai.onnx")

Shape = tuple[int | None, ...]


@dataclass(frozen=True)
class FlopCount:
    """FLOPs of one inference of the graph."""

    total_flops: int
    by_op_type: Mapping[str, int]
    uncounted_nodes: tuple[str, ...] = ()  # matrix / conv nodes whose shapes are unknown
    note: str = field(default=NOTE)


def count_flops(model: str | Path | Any) -> FlopCount:
    """FLOPs of ``model`` (a path to an .onnx file or an ``onnx.ModelProto``)."""
    onnx = _import_onnx()
    if isinstance(model, str | Path):
        try:
            model = onnx.load(str(model), load_external_data=False)
        except Exception as exc:  # onnx raises DecodeError, OSError, ValidationError, ...
            raise ModelLoadError(
                f"onnx cannot read model {model} to count its FLOPs: {exc}",
                fix="check that the file is a complete ONNX model",
            ) from None
    with contextlib.suppress(Exception):  # on failure, count with the shapes the file declares
        model = onnx.shape_inference.infer_shapes(model)
    shapes = known_shapes(model.graph)
    by_op: dict[str, int] = {}
    uncounted: list[str] = []
    for node in model.graph.node:
        if node.domain not in _STANDARD_DOMAINS or not _is_counted(node.op_type):
            continue
        flops = node_flops(node, shapes)
        if flops is None:
            uncounted.append(node.name or f"{node.op_type}({', '.join(node.input)})")
            continue
        by_op[node.op_type] = by_op.get(node.op_type, 0) + flops
    return FlopCount(sum(by_op.values()), dict(sorted(by_op.items())), tuple(uncounted))


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise MissingDependencyError(
            "counting a model's FLOPs needs the `onnx` package, which is not installed",
            fix="pip install 'onnx>=1.16' (only `inp-edge bench-model` needs it)",
        ) from None
    return onnx


def _is_counted(op_type: str) -> bool:
    return op_type in _MATMUL_A_INPUT or op_type in _CONV_W_INPUT or op_type in ("Gemm", "ConvTranspose")


def known_shapes(graph: Any) -> dict[str, Shape]:
    """Tensor name → shape (None for a symbolic or unknown dim), from value infos and initializers."""
    shapes: dict[str, Shape] = {}
    for info in (*graph.input, *graph.value_info, *graph.output):
        tensor_type = info.type.tensor_type
        if tensor_type.HasField("shape"):
            dims = tensor_type.shape.dim
            shapes[info.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)
    for initializer in graph.initializer:
        shapes[initializer.name] = tuple(int(d) for d in initializer.dims)
    return shapes


def node_flops(node: Any, shapes: Mapping[str, Shape]) -> int | None:
    """FLOPs of one matrix / conv node, or None when a needed shape is unknown."""
    out = _static(shapes.get(node.output[0]))
    if node.op_type in _MATMUL_A_INPUT:
        a = _static(shapes.get(node.input[_MATMUL_A_INPUT[node.op_type]]))
        return None if a is None or out is None else 2 * math.prod(out) * a[-1]
    if node.op_type == "Gemm":
        a = _static(shapes.get(node.input[0]))
        if a is None or out is None or len(a) != 2:
            return None
        trans_a = any(attr.name == "transA" and attr.i for attr in node.attribute)
        return 2 * math.prod(out) * (a[0] if trans_a else a[1])
    if node.op_type == "ConvTranspose":
        x, w = _static(shapes.get(node.input[0])), _static(shapes.get(node.input[1]))
        return None if x is None or w is None else 2 * math.prod(x) * math.prod(w[1:])
    w = _static(shapes.get(node.input[_CONV_W_INPUT[node.op_type]]))
    return None if w is None or out is None else 2 * math.prod(out) * math.prod(w[1:])


def _static(shape: Shape | None) -> tuple[int, ...] | None:
    if shape is None or any(dim is None or dim <= 0 for dim in shape):
        return None
    return tuple(int(dim) for dim in shape)  # type: ignore[arg-type]
