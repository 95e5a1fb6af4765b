"""Tiny real ONNX models that follow contract 1, for the device-side model tests.

Every model is a small graph built with onnx.helper (uint8 NHWC image → Cast → MatMul or Conv →
anomaly_map, pred_score, optionally patch_features) and run by onnxruntime on the CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edge.model import contract as c
from edge.model.session import SessionSettings

CPU_ONLY = SessionSettings(providers=("cpu",), intra_op_threads=1, warmup_runs=1)


STATS = c.ScoreStats(
    n=4, mean=0.5, std=0.1, min=0.4, max=0.7, p50=0.5, p90=0.6, p95=0.65, p99=0.69, source="test"
)


def typed_metadata(height: int, width: int) -> c.ModelMetadata:
    return c.ModelMetadata(
        input_hw=(height, width),
        encoder="tiny_test_encoder",
        precision="fp32",
        model_id="tiny-ü-test",
        preprocess=c.Preprocess(resize_px=height),
        score_stats=STATS,
        training_data=c.TrainingData(
            layout="mvtec", data_root="/data", categories=("bottle",), images_per_category={"bottle": 4},
            num_images=4, mode="full",
        ),
    )  # fmt: skip


def default_metadata(height: int, width: int) -> dict[str, str]:
    if height != width:  # the contract refuses it; written by hand to test that refusal
        return {**typed_metadata(height, height).to_props(), c.META_INPUT_SIZE: f"{height}x{width}"}
    return typed_metadata(height, width).to_props()


def build_model(
    *,
    height: int = 8,
    width: int = 8,
    kind: str = "matmul",
    input_type: int = TensorProto.UINT8,
    drop_output: str | None = None,
    drop_metadata: str | None = None,
    metadata: dict[str, str] | None = None,
    patch_features: bool = False,
) -> onnx.ModelProto:
    """uint8 NHWC image → Cast → MatMul (or Conv) → anomaly_map, pred_score (+ patch_features)."""
    nodes = [helper.make_node("Cast", [c.INPUT_IMAGE], ["x"], to=TensorProto.FLOAT)]
    inits: list[onnx.TensorProto] = []
    if kind == "matmul":
        inits += [numpy_helper.from_array(np.full((3, 1), 1 / 765, np.float32), "w")]
        inits += [numpy_helper.from_array(np.array([3], np.int64), "axis3")]
        nodes += [helper.make_node("MatMul", ["x", "w"], ["m"])]
        nodes += [helper.make_node("Squeeze", ["m", "axis3"], [c.OUTPUT_ANOMALY_MAP])]
    else:
        inits += [numpy_helper.from_array(np.full((1, 3, 3, 3), 1 / 6885, np.float32), "w")]
        inits += [numpy_helper.from_array(np.array([1], np.int64), "axis1")]
        nodes += [helper.make_node("Transpose", ["x"], ["nchw"], perm=[0, 3, 1, 2])]
        nodes += [helper.make_node("Conv", ["nchw", "w"], ["m"], pads=[1, 1, 1, 1])]
        nodes += [helper.make_node("Squeeze", ["m", "axis1"], [c.OUTPUT_ANOMALY_MAP])]
    nodes += [
        helper.make_node("ReduceMax", [c.OUTPUT_ANOMALY_MAP], [c.OUTPUT_PRED_SCORE], axes=[1, 2], keepdims=0)
    ]
    outputs = [
        helper.make_tensor_value_info(c.OUTPUT_ANOMALY_MAP, TensorProto.FLOAT, [1, height, width]),
        helper.make_tensor_value_info(c.OUTPUT_PRED_SCORE, TensorProto.FLOAT, [1]),
    ]
    if patch_features:
        inits += [numpy_helper.from_array(np.array([1, height * width, 3], np.int64), "patch_shape")]
        nodes += [helper.make_node("Reshape", ["x", "patch_shape"], [c.OUTPUT_PATCH_FEATURES])]
        outputs += [
            helper.make_tensor_value_info(c.OUTPUT_PATCH_FEATURES, TensorProto.FLOAT, [1, height * width, 3])
        ]
    outputs = [out for out in outputs if out.name != drop_output]
    image = helper.make_tensor_value_info(c.INPUT_IMAGE, input_type, [1, height, width, 3])
    graph = helper.make_graph(nodes, "tiny", [image], outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    props = {**default_metadata(height, width), **(metadata or {})}
    props.pop(drop_metadata or "", None)
    helper.set_model_props(model, props)
    return model


def save_model(tmp_path: Path, name: str = "tiny.onnx", **kwargs: object) -> Path:
    path = tmp_path / name
    onnx.save(build_model(**kwargs), str(path))  # type: ignore[arg-type]
    return path
