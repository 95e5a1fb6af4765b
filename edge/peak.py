"""The practical ceiling for matrix work on this device, with the providers the model uses.

``matmul_peak`` times one large matrix product (fp32 MatMul, u8×s8 MatMulInteger, optionally fp16)
in onnxruntime, with B a constant as model weights are. ``inp-edge bench-model`` compares the
model's achieved GFLOP/s with it. The graphs are built in memory with the ``onnx`` package.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.errors import MissingDependencyError
from edge.model.session import CPU, CUDA, TENSORRT, SessionSettings, create_session, resolve_providers

PEAK_IR_VERSION, PEAK_OPSET = 10, 17


@dataclass(frozen=True)
class PeakResult:
    """Best-of-``runs`` speed of one size×size matrix product with the given providers."""

    size: int
    runs: int
    providers_in_use: tuple[str, ...]
    fp32_gflops: float
    int8_gops: float  # u8 × s8 → s32 MatMulInteger, giga integer multiply-adds ×2 per second
    fp16_gflops: float | None = None


def matmul_peak(
    providers: Sequence[str], size: int = 2048, runs: int = 5, threads: int = 0, include_fp16: bool = False
) -> PeakResult:
    """Time fp32 MatMul and u8×s8 MatMulInteger of size×size matrices (graphs built in memory).

    TensorRT is left out (it builds an engine per graph); CUDA's cuBLAS or the CPU's MLAS kernels
    give the ceiling. Needs the ``onnx`` package to build the graphs.
    """
    import onnxruntime as ort

    chosen = [
        name for name in resolve_providers(providers, ort.get_available_providers()) if name != TENSORRT
    ]
    chosen = chosen or [CPU]
    flop = 2.0 * size**3
    rng = np.random.default_rng(0)
    a_f32 = rng.standard_normal((size, size), dtype=np.float32)
    a_u8 = rng.integers(0, 256, (size, size), dtype=np.uint8)
    fp32_s, used = _best_run_s(_matmul_model(size, "float32"), a_f32, chosen, runs, threads)
    int8_s, _ = _best_run_s(_matmul_model(size, "int8"), a_u8, chosen, runs, threads)
    fp16_gflops = None
    if include_fp16:
        fp16_s, _ = _best_run_s(
            _matmul_model(size, "float16"), a_f32.astype(np.float16), chosen, runs, threads
        )
        fp16_gflops = flop / fp16_s / 1e9
    return PeakResult(size, runs, used, flop / fp32_s / 1e9, flop / int8_s / 1e9, fp16_gflops)


def _matmul_model(size: int, kind: str) -> bytes:
    """Y = A @ B with B a constant (as model weights are): float32, float16, or u8 × s8 MatMulInteger."""
    try:
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise MissingDependencyError(
            "the matrix-product peak needs the `onnx` package to build its graphs",
            fix="pip install 'onnx>=1.16', or run bench-model with --no-peak",
        ) from None
    rng = np.random.default_rng(1)
    a_type, y_type, op = {
        "float32": (TensorProto.FLOAT, TensorProto.FLOAT, "MatMul"),
        "float16": (TensorProto.FLOAT16, TensorProto.FLOAT16, "MatMul"),
        "int8": (TensorProto.UINT8, TensorProto.INT32, "MatMulInteger"),
    }[kind]
    if kind == "int8":
        b = rng.integers(-128, 128, (size, size), dtype=np.int8)
    else:
        b = rng.standard_normal((size, size), dtype=np.float32).astype(kind)
    graph = helper.make_graph(
        [helper.make_node(op, ["a", "b"], ["y"])],
        f"peak_{kind}",
        [helper.make_tensor_value_info("a", a_type, [size, size])],
        [helper.make_tensor_value_info("y", y_type, [size, size])],
        [numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", PEAK_OPSET)])
    model.ir_version = PEAK_IR_VERSION
    return model.SerializeToString()


def _best_run_s(
    model: bytes, a: np.ndarray, providers: list[str], runs: int, threads: int
) -> tuple[float, tuple[str, ...]]:
    settings = SessionSettings(providers=tuple(providers), intra_op_threads=threads, warmup_runs=0)
    session = create_session(model, settings)
    run = _runner(session, a, on_gpu=session.get_providers()[0] == CUDA)
    run()  # warm-up: allocation, weight pre-packing
    best_s = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        run()
        best_s = min(best_s, time.perf_counter() - start)
    return best_s, tuple(session.get_providers())


def _runner(session: Any, a: np.ndarray, on_gpu: bool) -> Callable[[], Any]:
    """On CUDA, inputs and outputs stay on the GPU so the copies over PCIe are not timed."""
    if not on_gpu:
        return lambda: session.run(None, {"a": a})
    import onnxruntime as ort

    binding = session.io_binding()
    binding.bind_ortvalue_input("a", ort.OrtValue.ortvalue_from_numpy(a, "cuda", 0))
    binding.bind_output("y", "cuda", 0)
    return lambda: session.run_with_iobinding(binding)


def peak_for_precision(peak: PeakResult, precision: str) -> tuple[str, float]:
    """Which measured peak a model of ``precision`` is compared with (pure)."""
    if precision == "int8":
        return "int8", peak.int8_gops
    if precision == "fp16" and peak.fp16_gflops is not None:
        return "fp16", peak.fp16_gflops
    return "fp32", peak.fp32_gflops
