"""Counting the FLOPs of an ONNX graph, float and int8 forms alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge.errors import MissingDependencyError
from edge.model.flops import count_flops
from tests.tiny_models import save_model


def one_node_model(
    node: onnx.NodeProto, inputs: list[tuple[str, int, list[int]]], inits: list
) -> onnx.ModelProto:
    graph = helper.make_graph(
        [node],
        "one",
        [helper.make_tensor_value_info(name, dtype, shape) for name, dtype, shape in inputs],
        [helper.make_tensor_value_info(node.output[0], TensorProto.UNDEFINED, None)],
        [numpy_helper.from_array(array, name) for name, array in inits],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    return model


F = TensorProto.FLOAT


def test_flops_of_batched_matmul() -> None:
    node = helper.make_node("MatMul", ["a", "b"], ["y"])
    model = one_node_model(node, [("a", F, [2, 3, 4])], [("b", np.zeros((4, 5), np.float32))])
    assert count_flops(model).by_op_type == {"MatMul": 2 * 2 * 3 * 5 * 4}


@pytest.mark.parametrize(("trans_a", "a_shape"), [(0, [3, 4]), (1, [4, 3])])
def test_flops_of_gemm(trans_a: int, a_shape: list[int]) -> None:
    node = helper.make_node("Gemm", ["a", "b", "c"], ["y"], transA=trans_a, transB=1)
    inits = [("b", np.zeros((5, 4), np.float32)), ("c", np.zeros(5, np.float32))]
    assert count_flops(one_node_model(node, [("a", F, a_shape)], inits)).total_flops == 2 * 3 * 5 * 4


@pytest.mark.parametrize(("groups", "cin_per_group"), [(1, 3), (3, 1)])
def test_flops_of_conv(groups: int, cin_per_group: int) -> None:
    node = helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1], strides=[2, 2], group=groups)
    inits = [("w", np.zeros((6, cin_per_group, 3, 3), np.float32))]
    flops = count_flops(one_node_model(node, [("x", F, [1, 3, 8, 8])], inits))
    assert flops.by_op_type == {"Conv": 2 * 6 * cin_per_group * 3 * 3 * 4 * 4}


def test_flops_of_int8_forms_count_like_float() -> None:
    matmul = helper.make_node("MatMulInteger", ["a", "b"], ["y"])
    model = one_node_model(matmul, [("a", TensorProto.UINT8, [7, 4])], [("b", np.zeros((4, 5), np.int8))])
    assert count_flops(model).by_op_type == {"MatMulInteger": 2 * 7 * 5 * 4}
    names = ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"]
    conv = helper.make_node("QLinearConv", names, ["y"], pads=[1, 1, 1, 1])
    scale, u8zero, s8zero = np.float32(0.1), np.uint8(0), np.int8(0)
    inits = [("xs", scale), ("xz", u8zero), ("w", np.zeros((4, 2, 3, 3), np.int8)), ("ws", scale)]
    inits += [("wz", s8zero), ("ys", scale), ("yz", u8zero)]
    model = one_node_model(conv, [("x", TensorProto.UINT8, [1, 2, 5, 5])], inits)
    assert count_flops(model).by_op_type == {"QLinearConv": 2 * 4 * 2 * 9 * 25}


def test_flops_of_qdq_matmul_count_as_matmul() -> None:
    dq = helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"])
    matmul = helper.make_node("MatMul", ["a", "w"], ["y"])
    graph = helper.make_graph(
        [dq, matmul],
        "qdq",
        [helper.make_tensor_value_info("a", F, [1, 10, 16])],
        [helper.make_tensor_value_info("y", F, None)],
        [
            numpy_helper.from_array(np.zeros((16, 8), np.int8), "wq"),
            numpy_helper.from_array(np.float32(0.5), "ws"),
            numpy_helper.from_array(np.int8(0), "wz"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    flops = count_flops(model)
    assert flops.by_op_type == {"MatMul": 2 * 10 * 8 * 16} and flops.uncounted_nodes == ()


def test_flops_of_contract_model_file(tmp_path: Path) -> None:
    path = save_model(tmp_path, kind="conv", height=8, width=8)
    assert count_flops(path).by_op_type == {"Conv": 2 * 1 * 3 * 9 * 64}


def test_flops_without_onnx_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "onnx", None)
    with pytest.raises(MissingDependencyError, match="needs the `onnx` package") as caught:
        count_flops("model.onnx")
    assert "pip install" in caught.value.fix
