"""Nearest-memory distances for every part, as a small INT8 onnxruntime graph built on the device.

Scoring a part against a product's memory is one (N × C) by (C × M) matrix product and a ``min``
(1024 × 232 × 2048 for the EfficientNet-Lite0 model at 256 px). numpy's BLAS does it in ~11 ms on
one core of the test machine; the same product in 8-bit integers (``MatMulInteger``, AVX-512 VNNI /
AMX) takes ~3 ms (docs/products.md). The graph:

    queries (N, C) float32 ─ DynamicQuantizeLinear ─ u8 (per-part scale, zero point)
    memory  (C, M) int8, symmetric, one scale per memory row (built once per product)
    MatMulInteger → int32 → float × (query scale · row scale · −2) + |m|² → ReduceMin over M

so the graph gives ``min_m (|m|² − 2 q·m)`` and the caller adds ``|q|²``. The rounding moves a
distance by about 1.5 % of a typical one (measured against float32 in tests/test_products_scoring.py);
enrollment's leave-one-out distances stay in float32 (edge/products/memory.py), and the measured
image and pixel figures in docs/benchmarks.md are those of this graph.
"""

from __future__ import annotations

import numpy as np

from edge.products.memory import squared_norms

OPSET = 17
IR_VERSION = 8  # onnxruntime 1.31 reads at most IR 13; opset 17 goes with IR 8
QUERY, BEST = "queries", "best"


def quantized_memory(memory: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(C, M) int8 memory (transposed) and the (M,) scale of each row: symmetric, per row."""
    peak = np.abs(memory).max(axis=1)
    scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    values = np.clip(np.round(memory / scale[:, None]), -127, 127).astype(np.int8)
    return np.ascontiguousarray(values.T), scale


def distance_model(memory: np.ndarray) -> bytes:
    """The serialised graph: ``queries`` (N, C) float32 → ``best`` (N,) = min over rows of |m|² − 2 q·m."""
    from onnx import TensorProto, helper, numpy_helper

    values, row_scale = quantized_memory(np.asarray(memory, np.float32))
    inits = [
        numpy_helper.from_array(values, "memory_s8"),
        numpy_helper.from_array(np.zeros((), np.int8), "memory_zero"),
        numpy_helper.from_array((-2.0 * row_scale).astype(np.float32), "row_scale"),
        numpy_helper.from_array(squared_norms(np.asarray(memory, np.float32)), "row_norms"),
    ]
    nodes = [
        helper.make_node("DynamicQuantizeLinear", [QUERY], ["q_u8", "q_scale", "q_zero"]),
        helper.make_node("MatMulInteger", ["q_u8", "memory_s8", "q_zero", "memory_zero"], ["dot_i32"]),
        helper.make_node("Cast", ["dot_i32"], ["dot"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["q_scale", "row_scale"], ["scale"]),
        helper.make_node("Mul", ["dot", "scale"], ["cross"]),
        helper.make_node("Add", ["cross", "row_norms"], ["partial"]),
        helper.make_node("ReduceMin", ["partial"], [BEST], axes=[1], keepdims=0),
    ]
    channels = int(memory.shape[1])
    graph = helper.make_graph(
        nodes,
        "inp_edge_memory_distance",
        [helper.make_tensor_value_info(QUERY, TensorProto.FLOAT, ["tokens", channels])],
        [helper.make_tensor_value_info(BEST, TensorProto.FLOAT, ["tokens"])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    return model.SerializeToString()


class MemoryDistances:
    """One product's memory as an onnxruntime session on the CPU, ``threads`` threads that do not spin
    (scoring.DISTANCE_THREADS in the service)."""

    def __init__(self, memory: np.ndarray, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # beside the model's threads
        self.channels = int(memory.shape[1])
        self._session = ort.InferenceSession(
            distance_model(memory), options, providers=["CPUExecutionProvider"]
        )

    def __call__(self, queries: np.ndarray) -> np.ndarray:
        """(N,) distance of each (N, C) query row to its nearest memory row."""
        queries = np.ascontiguousarray(queries, np.float32)
        best = self._session.run([BEST], {QUERY: queries})[0]
        return np.sqrt(np.maximum(best + squared_norms(queries), 0.0))
