"""Small real ONNX models that follow contract 1, for the service tests (built in memory, no torch).

The "brightness" model's anomaly map is the grey level of the input (0..1), its score the mean of
the top 1 % of the map: bright marks on the drawn washers (the scratches) fail, dark ones do not
matter. ``work`` adds a chain of constant matrix products so a model run takes measurable time
(used to overrun the inspect queue on purpose).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edge.model import contract as c

GOOD_STATS = c.ScoreStats(
    n=20, mean=0.62, std=0.01, min=0.6, max=0.66, p50=0.62, p90=0.64, p95=0.65, p99=0.66, source="test model"
)


def brightness_metadata(size_px: int, model_id: str = "brightness-test") -> c.ModelMetadata:
    return c.ModelMetadata(
        input_hw=(size_px, size_px),
        encoder="brightness",
        precision="fp32",
        model_id=model_id,
        preprocess=c.Preprocess(resize_px=size_px),
        score_stats=GOOD_STATS,
        training_data=c.TrainingData(
            layout="synthetic", data_root="", categories=("washer",), images_per_category={"washer": 20},
            num_images=20, mode="full",
        ),
    )  # fmt: skip


def brightness_model(size_px: int = 64, *, work: int = 0, patch_features: bool = False) -> onnx.ModelProto:
    top_k = max(1, int(size_px * size_px * 0.01))
    inits = [
        numpy_helper.from_array(np.full((3, 1), 1 / 765, np.float32), "to_grey"),
        numpy_helper.from_array(np.array([3], np.int64), "last_axis"),
        numpy_helper.from_array(np.array([1, size_px * size_px], np.int64), "flat"),
        numpy_helper.from_array(np.array([top_k], np.int64), "k"),
    ]
    nodes = [
        helper.make_node("Cast", [c.INPUT_IMAGE], ["x"], to=TensorProto.FLOAT),
        helper.make_node("MatMul", ["x", "to_grey"], ["grey"]),
        helper.make_node("Squeeze", ["grey", "last_axis"], ["map0"]),
        helper.make_node("Reshape", ["map0", "flat"], ["flat_map"]),
        helper.make_node("TopK", ["flat_map", "k"], ["top", "top_index"], axis=1),
        helper.make_node("ReduceMean", ["top"], [c.OUTPUT_PRED_SCORE], axes=[1], keepdims=0),
    ]
    nodes += _work_chain(work, inits)
    nodes += [helper.make_node("Add", ["map0", "work_zero"], [c.OUTPUT_ANOMALY_MAP])]
    outputs = [
        helper.make_tensor_value_info(c.OUTPUT_ANOMALY_MAP, TensorProto.FLOAT, [1, size_px, size_px]),
        helper.make_tensor_value_info(c.OUTPUT_PRED_SCORE, TensorProto.FLOAT, [1]),
    ]
    if patch_features:
        inits.append(numpy_helper.from_array(np.array([1, size_px * size_px, 3], np.int64), "patch_shape"))
        nodes.append(helper.make_node("Reshape", ["x", "patch_shape"], [c.OUTPUT_PATCH_FEATURES]))
        outputs.append(
            helper.make_tensor_value_info(
                c.OUTPUT_PATCH_FEATURES, TensorProto.FLOAT, [1, size_px * size_px, 3]
            )
        )
    image = helper.make_tensor_value_info(c.INPUT_IMAGE, TensorProto.UINT8, [1, size_px, size_px, 3])
    graph = helper.make_graph(nodes, "brightness", [image], outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    helper.set_model_props(model, brightness_metadata(size_px).to_props())
    return model


def _work_chain(work: int, inits: list) -> list:
    """``work`` products of 512×512 matrices, fed from the input (so nothing constant-folds away);
    the result is multiplied by 0 and added to the map, so the map stays the grey level."""
    inits.append(numpy_helper.from_array(np.zeros((1, 1), np.float32), "zero"))
    nodes = [helper.make_node("ReduceMean", ["x"], ["x_mean"], keepdims=0)]
    if work == 0:
        return [*nodes, helper.make_node("Mul", ["x_mean", "zero"], ["work_zero"])]
    rng = np.random.default_rng(0)
    inits.append(numpy_helper.from_array(rng.standard_normal((512, 512), dtype=np.float32) * 0.04, "w"))
    inits.append(numpy_helper.from_array(rng.standard_normal((512, 512), dtype=np.float32), "seed"))
    nodes.append(helper.make_node("Mul", ["seed", "x_mean"], ["work_in"]))
    current = "work_in"
    for index in range(work):
        nodes.append(helper.make_node("MatMul", [current, "w"], [f"work{index}"]))
        current = f"work{index}"
    nodes.append(helper.make_node("ReduceMean", [current], ["work_mean"], keepdims=1))
    nodes.append(helper.make_node("Mul", ["work_mean", "zero"], ["work_zero"]))
    return nodes


def save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path
