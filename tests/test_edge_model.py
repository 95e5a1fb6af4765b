"""The device-side model loading: contract check, load errors, providers, FLOP counting.

Every model here is a small real ONNX graph built with onnx.helper and run by onnxruntime.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge.errors import (
    ConfigError,
    MissingDependencyError,
    ModelContractError,
    ModelInputError,
    ModelLoadError,
)
from edge.model import contract as c
from edge.model.flops import count_flops
from edge.model.onnx_file import read_metadata_props
from edge.model.session import (
    CPU,
    CUDA,
    TENSORRT,
    SessionSettings,
    default_cache_dir,
    open_session,
    provider_options,
    resolve_providers,
    run_model,
)

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


# --- contract -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["matmul", "conv"])
def test_contract_ok_gives_model_info_and_runs(tmp_path: Path, kind: str) -> None:
    path = save_model(tmp_path, kind=kind, height=8, width=8, patch_features=True)
    loaded = open_session(path, CPU_ONLY)
    info = loaded.info
    assert info.input_hw == (8, 8)
    assert info.model_id == "tiny-ü-test" and info.precision == "fp32" and info.encoder == "tiny_test_encoder"
    assert info.meta == typed_metadata(8, 8)
    assert info.meta.score_stats.n == 4 and info.meta.training_data.categories == ("bottle",)
    assert info.optional_outputs == (c.OUTPUT_PATCH_FEATURES,)
    assert len(info.sha256) == 64 and loaded.providers_in_use == (CPU,)
    image = np.full((8, 8, 3), 255, np.uint8)
    outputs = run_model(loaded, image)
    assert outputs[c.OUTPUT_ANOMALY_MAP].shape == (1, 8, 8)
    assert outputs[c.OUTPUT_PRED_SCORE].shape == (1,)
    assert outputs[c.OUTPUT_PATCH_FEATURES].shape == (1, 64, 3)
    if kind == "matmul":
        np.testing.assert_allclose(outputs[c.OUTPUT_PRED_SCORE], [1.0], rtol=1e-5)


def test_missing_output_names_the_output(tmp_path: Path) -> None:
    path = save_model(tmp_path, drop_output=c.OUTPUT_PRED_SCORE)
    with pytest.raises(ModelContractError, match=c.OUTPUT_PRED_SCORE) as caught:
        open_session(path, CPU_ONLY)
    assert str(path) in str(caught.value) and "inp-export export" in caught.value.fix


def test_missing_metadata_key_names_the_key(tmp_path: Path) -> None:
    path = save_model(tmp_path, drop_metadata=c.META_SCORE_STATS)
    with pytest.raises(ModelContractError, match=c.META_SCORE_STATS) as caught:
        open_session(path, CPU_ONLY)
    assert "fix: re-export" in str(caught.value)


def test_wrong_input_dtype_names_the_input(tmp_path: Path) -> None:
    path = save_model(tmp_path, input_type=TensorProto.FLOAT)
    with pytest.raises(ModelContractError, match=r"input 'image'.*tensor\(float\).*uint8"):
        open_session(path, CPU_ONLY)


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({c.META_SCORE_STATS: "{not json"}, f"{c.META_SCORE_STATS} that is not valid JSON"),
        ({c.META_PREPROCESS: "[1, 2]"}, f"{c.META_PREPROCESS} holding a JSON list"),
        ({c.META_SCHEMA_VERSION: "99"}, f"{c.META_SCHEMA_VERSION}='99'"),
        ({c.META_INPUT_SIZE: "16x16"}, "'16x16' but its input 'image' is 8x8"),
        ({c.META_INPUT_SIZE: "eight"}, "expected 'HxW'"),
        ({c.META_PRECISION: "int4"}, "expected one of fp32, fp16, int8"),
        ({c.META_MODEL_ID: "  "}, f"{c.META_MODEL_ID} empty"),
        (
            {c.META_SCORE_STATS: json.dumps({**dataclasses.asdict(STATS), "count": 4})},
            "has unknown ['count']",
        ),
        ({c.META_SCORE_STATS: json.dumps({"mean": 0.5})}, "lacks ['n', 'std'"),
        ({c.META_SCORE_STATS: json.dumps({**dataclasses.asdict(STATS), "n": "4"})}, "score_stats_json.n='4'"),
        ({c.META_SCORE_STATS: json.dumps({**dataclasses.asdict(STATS), "p50": 0.9})}, "out of order"),
        ({c.META_SCORE_STATS: json.dumps({**dataclasses.asdict(STATS), "n": 0})}, "n=0"),
        (
            {c.META_PREPROCESS: json.dumps({"resize_px": 8, "resize_method": "bilinear"})},
            "resize_method 'bilinear'",
        ),
        ({c.META_PREPROCESS: json.dumps({"resize_px": 4})}, "resize_px 4 below the input size 8"),
        ({c.META_PREPROCESS: json.dumps({"resize_px": 8, "crop_px": 8})}, "has unknown ['crop_px']"),
    ],
)
def test_bad_metadata_value_names_the_key(tmp_path: Path, metadata: dict[str, str], expected: str) -> None:
    path = save_model(tmp_path, metadata=metadata)
    with pytest.raises(ModelContractError) as caught:
        open_session(path, CPU_ONLY)
    assert expected in str(caught.value)


def test_run_model_rejects_wrong_image_with_expected_shape(tmp_path: Path) -> None:
    loaded = open_session(save_model(tmp_path), CPU_ONLY)
    with pytest.raises(ModelInputError, match=r"shape \(8, 8, 3\), got float32 \(8, 8, 3\)"):
        run_model(loaded, np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ModelInputError, match=r"got uint8 \(8, 9, 3\)"):
        run_model(loaded, np.zeros((8, 9, 3), np.uint8))


# --- load errors ----------------------------------------------------------------------------------


def test_truncated_file_names_the_path(tmp_path: Path) -> None:
    whole = save_model(tmp_path).read_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ModelLoadError, match="truncated") as caught:
        open_session(path, CPU_ONLY)
    assert str(path) in str(caught.value) and caught.value.fix


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"nowhere\.onnx does not exist"):
        open_session(tmp_path / "nowhere.onnx", CPU_ONLY)


def test_text_file_is_not_an_onnx_model(tmp_path: Path) -> None:
    path = tmp_path / "notes.onnx"
    path.write_text("hello world, this is not a model\n")
    with pytest.raises(ModelLoadError, match="not an ONNX model") as caught:
        open_session(path, CPU_ONLY)
    assert str(path) in str(caught.value)


def test_read_metadata_props_matches_onnx(tmp_path: Path) -> None:
    path = save_model(tmp_path)
    expected = {prop.key: prop.value for prop in onnx.load(str(path)).metadata_props}
    assert read_metadata_props(path) == expected
    assert expected[c.META_MODEL_ID] == "tiny-ü-test"


# --- providers ------------------------------------------------------------------------------------

ALL = (TENSORRT, CUDA, CPU)
CPU_ONLY_BUILD = ("AzureExecutionProvider", CPU)


@pytest.mark.parametrize(
    ("requested", "available", "expected"),
    [
        (None, ALL, list(ALL)),
        (["auto"], (CPU, CUDA), [CUDA, CPU]),
        ("auto", CPU_ONLY_BUILD, [CPU]),
        ([], (CUDA, CPU), [CUDA, CPU]),
        (["cuda", "cpu"], ALL, [CUDA, CPU]),
        (["CPU"], ALL, [CPU]),
        ("tensorrt,cuda", ALL, [TENSORRT, CUDA]),
        ([CUDA, "cuda", "cpu"], ALL, [CUDA, CPU]),
    ],
)
def test_resolve_providers(
    requested: list[str] | str | None, available: tuple[str, ...], expected: list[str]
) -> None:
    assert resolve_providers(requested, available) == expected


@pytest.mark.parametrize(
    ("requested", "available", "message"),
    [
        (["cuda"], CPU_ONLY_BUILD, "'cuda' (CUDAExecutionProvider) is not available"),
        (["tensorrt"], (CUDA, CPU), "available: CUDAExecutionProvider, CPUExecutionProvider"),
        (["gpu"], ALL, "unknown execution provider 'gpu'"),
        (["auto", "cpu"], ALL, "'auto' cannot be combined"),
        (None, ("AzureExecutionProvider",), "no usable execution provider"),
    ],
)
def test_resolve_providers_errors_say_what_is_available(
    requested: list[str] | None, available: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        resolve_providers(requested, available)
    if "not available" in message:
        assert "onnxruntime-gpu" in caught.value.fix


def test_provider_options_tensorrt_caches_and_fp16(tmp_path: Path) -> None:
    pairs = dict(provider_options([TENSORRT, CUDA, CPU], precision="fp16", cache_dir=tmp_path, device_id=1))
    trt = pairs[TENSORRT]
    assert trt["trt_engine_cache_enable"] == "True" and trt["trt_fp16_enable"] == "True"
    assert Path(trt["trt_engine_cache_path"]) == tmp_path / "tensorrt"
    assert "trt_int8_enable" not in trt
    assert pairs[CUDA] == {"device_id": "1"} and pairs[CPU] == {}


@pytest.mark.parametrize(("precision", "fp16", "int8"), [("fp32", False, False), ("int8", False, True)])
def test_provider_options_precision_flags(tmp_path: Path, precision: str, fp16: bool, int8: bool) -> None:
    ((name, options),) = provider_options([TENSORRT], precision=precision, cache_dir=tmp_path)
    assert ("trt_fp16_enable" in options) is fp16 and ("trt_int8_enable" in options) is int8


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"INP_EDGE_CACHE_DIR": "/var/cache/x", "XDG_CACHE_HOME": "/xdg"}, Path("/var/cache/x")),
        ({"XDG_CACHE_HOME": "/xdg"}, Path("/xdg/inp-edge")),
        ({}, Path.home() / ".cache" / "inp-edge"),
    ],
)
def test_default_cache_dir(environ: dict[str, str], expected: Path) -> None:
    assert default_cache_dir(environ) == expected


# --- FLOPs ----------------------------------------------------------------------------------------


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


def test_non_square_input_size_is_refused_naming_the_key(tmp_path: Path) -> None:
    path = save_model(tmp_path, height=8, width=12)
    with pytest.raises(ModelContractError, match="must be square") as caught:
        open_session(path, CPU_ONLY)
    assert c.META_INPUT_SIZE in str(caught.value) and "inp-export export" in caught.value.fix


def test_metadata_round_trips_through_props() -> None:
    typed = typed_metadata(8, 8)
    assert c.ModelMetadata.from_props(typed.to_props(), "x.onnx") == typed


def test_writing_metadata_that_breaks_the_contract_is_refused() -> None:
    broken = dataclasses.replace(typed_metadata(8, 8), precision="int4")
    with pytest.raises(ModelContractError, match="int4"):
        broken.to_props()
