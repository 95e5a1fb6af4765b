"""FP16 / INT8 artifacts and the accuracy gate that decides whether one is written.

The models are the tiny trained washer model of ``test_artifact.py`` and its variants (built once
per session); the gate itself is a pure function, tested with a table.
"""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from edge.errors import ConfigError
from edge.model import contract as c
from edge.model.session import SessionSettings, open_session
from export import cli
from export.onnx_eval import evaluate_artifact, evaluate_artifacts, open_artifact
from export.quantize import (
    DEFAULT_KEEP_FLOAT,
    NETWORK_SCOPE,
    QuantizeSettings,
    accuracy_gate,
    build_int8,
    network_nodes,
    quantize_artifact,
    resolve_keep_float,
    set_precision,
)
from tests.test_artifact import CATEGORY, TinyArtifact, build_tiny_artifact, build_variant

CPU_ONLY = SessionSettings(providers=("cpu",), intra_op_threads=1, warmup_runs=1)
MATRIX_OPS = ("Conv", "MatMul", "Gemm")
GATE_EXIT_STATUS = 3


def metrics(image_auroc: float, pixel_auroc: float | None = None) -> dict:
    doc = {"image": {"auroc": image_auroc, "ap": 0.5}}
    if pixel_auroc is not None:
        doc["pixel"] = {"auroc": pixel_auroc, "ap": 0.5}
    return doc


@pytest.mark.parametrize(
    ("fp32", "quantized", "bound", "passed", "drops"),
    [
        (metrics(0.99, 0.98), metrics(0.99, 0.98), 0.0, True, {"image_auroc": 0.0, "pixel_auroc": 0.0}),
        (metrics(0.99, 0.98), metrics(0.987, 0.978), 0.5, True, {"image_auroc": 0.3, "pixel_auroc": 0.2}),
        (metrics(0.99, 0.98), metrics(0.99, 0.97), 0.5, False, {"image_auroc": 0.0, "pixel_auroc": 1.0}),
        (metrics(0.99, 0.98), metrics(0.98, 0.98), 0.5, False, {"image_auroc": 1.0, "pixel_auroc": 0.0}),
        (metrics(0.99, 0.98), metrics(0.995, 0.99), 0.0, True, {"image_auroc": -0.5, "pixel_auroc": -1.0}),
        (metrics(0.99), metrics(0.985), 0.5, True, {"image_auroc": 0.5}),
        (metrics(0.99, 0.98), metrics(0.99, 0.979), 0.1, True, {"image_auroc": 0.0, "pixel_auroc": 0.1}),
        (metrics(0.99), metrics(0.98), 0.5, False, {"image_auroc": 1.0}),
        (metrics(0.99, 0.98), metrics(0.99), 0.5, True, {"image_auroc": 0.0}),
    ],
    ids=[
        "equal-at-zero-bound",
        "small-drop-within",
        "pixel-drop-over",
        "image-drop-over",
        "improvement-passes-zero-bound",
        "no-pixel-level-within",
        "drop-equal-to-bound-passes",
        "no-pixel-level-over",
        "pixel-missing-in-quantized-only",
    ],
)
def test_accuracy_gate_compares_auroc_drops_in_points(fp32, quantized, bound, passed, drops) -> None:
    gate = accuracy_gate(fp32, quantized, bound)
    assert gate.passed is passed
    assert gate.drops_points.keys() == drops.keys()
    for name, drop in drops.items():
        assert gate.drops_points[name] == pytest.approx(drop, abs=1e-9)
    assert ("OVER" in gate.describe()) is not passed


@pytest.mark.parametrize(("field", "value"), [("precision", "int4"), ("calibration_method", "kl")])
def test_quantize_settings_reject_unknown_choice_naming_it(field: str, value: str) -> None:
    with pytest.raises(ValueError, match=value):
        QuantizeSettings(**{field: value})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyArtifact:
    return build_tiny_artifact(tmp_path_factory)


def producers(graph) -> dict[str, str]:
    """tensor name → op type of the node that writes it."""
    return {output: node.op_type for node in graph.node for output in node.output}


def test_network_nodes_are_matrix_ops_under_the_network_scope(tiny: TinyArtifact) -> None:
    names = network_nodes(tiny.onnx_path, QuantizeSettings())
    ops = {node.name: node.op_type for node in onnx.load(str(tiny.onnx_path)).graph.node}
    assert names and all(name.startswith(NETWORK_SCOPE) and ops[name] in MATRIX_OPS for name in names)
    post = [name for name, op in ops.items() if op in MATRIX_OPS and not name.startswith(NETWORK_SCOPE)]
    assert post, "the post-processing (Gaussian Conv) should exist outside the network scope"
    kept = network_nodes(tiny.onnx_path, QuantizeSettings(exclude_name_patterns=("/model/encoder/",)))
    assert kept and set(kept) < set(names)
    assert not any("/model/encoder/" in name for name in kept)


def test_int8_with_every_network_node_kept_float_is_an_error(tiny: TinyArtifact, tmp_path: Path) -> None:
    out = tmp_path / "model-int8.onnx"
    settings = QuantizeSettings(exclude_name_patterns=(NETWORK_SCOPE,))
    with pytest.raises(ConfigError, match="keep-float"):
        build_int8(tiny.onnx_path, out, iter(()), settings)
    assert not out.exists()


@pytest.mark.slow
def test_int8_quantizes_only_network_matrix_ops(tiny: TinyArtifact, tmp_path_factory) -> None:
    graph = onnx.load(str(build_variant(tiny, "int8", tmp_path_factory))).graph
    made_by = producers(graph)

    def reads_dequantized(node) -> bool:
        return any(made_by.get(name) == "DequantizeLinear" for name in node.input)

    matrix = [node for node in graph.node if node.op_type in MATRIX_OPS]
    inside = [node for node in matrix if node.name.startswith(NETWORK_SCOPE)]
    outside = [node for node in matrix if not node.name.startswith(NETWORK_SCOPE)]
    assert inside and all(reads_dequantized(node) for node in inside)
    assert outside and not any(reads_dequantized(node) for node in outside)


def cast_target(node) -> int | None:
    return next((a.i for a in node.attribute if a.name == "to"), None) if node.op_type == "Cast" else None


def test_fp16_keeps_pre_and_post_processing_in_float32(tiny: TinyArtifact, tmp_path_factory) -> None:
    graph = onnx.load(str(build_variant(tiny, "fp16", tmp_path_factory))).graph
    made_by = {output: node for node in graph.node for output in node.output}
    float16_weights = {i.name for i in graph.initializer if i.data_type == onnx.TensorProto.FLOAT16}
    readers = {node.name for node in graph.node if float16_weights.intersection(node.input)}
    assert readers and all(name.startswith(NETWORK_SCOPE) for name in readers)
    round_trips = [
        node.name
        for node in graph.node
        if cast_target(node) == onnx.TensorProto.FLOAT
        and node.input[0] in made_by
        and cast_target(made_by[node.input[0]]) == onnx.TensorProto.FLOAT16
    ]
    assert round_trips == [], "a float32 tensor between two float32 nodes was rounded to float16"
    gaussians = [n for n in graph.node if n.op_type == "Conv" and not n.name.startswith(NETWORK_SCOPE)]
    assert gaussians and all(float32_constant(graph, node.input[1]) for node in gaussians)


def float32_constant(graph, name: str) -> bool:
    """``name`` is a float32 initializer or the output of a float32 Constant node."""
    inits = [i.data_type == onnx.TensorProto.FLOAT for i in graph.initializer if i.name == name]
    nodes = [
        n.attribute[0].t.data_type == onnx.TensorProto.FLOAT
        for n in graph.node
        if n.op_type == "Constant" and name in n.output
    ]
    return (inits + nodes) == [True]


def test_set_precision_stamps_metadata_and_keeps_the_rest(tiny: TinyArtifact, tmp_path: Path) -> None:
    out = set_precision(tiny.onnx_path, "fp16", tmp_path / "stamped.onnx")
    before = {e.key: e.value for e in onnx.load(str(tiny.onnx_path)).metadata_props}
    after = {e.key: e.value for e in onnx.load(str(out)).metadata_props}
    assert after == {**before, c.META_PRECISION: "fp16"}


def test_generous_bound_writes_the_quantized_artifact(tiny: TinyArtifact, tmp_path: Path) -> None:
    out = tmp_path / "model-fp16.onnx"
    settings = QuantizeSettings(precision="fp16", max_drop_points=100.0)
    outcome = quantize_artifact(tiny.onnx_path, out, tiny.data_root, [CATEGORY], settings)
    assert outcome.gate.passed and outcome.written == out and out.is_file()
    assert outcome.settings == resolve_keep_float(settings, "efficientnet_lite0")  # what was used
    assert set(outcome.gate.drops_points) == {"image_auroc", "pixel_auroc"}
    assert open_session(out, CPU_ONLY).info.precision == "fp16"
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temp file left beside it


def test_two_artifacts_scored_in_one_pass_get_the_metrics_each_gets_alone(
    tiny: TinyArtifact, tmp_path_factory
) -> None:
    paths = (tiny.onnx_path, build_variant(tiny, "fp16", tmp_path_factory))
    together = evaluate_artifacts([open_artifact(path) for path in paths], tiny.data_root, [CATEGORY])
    alone = [evaluate_artifact(path, tiny.data_root, [CATEGORY]) for path in paths]
    assert together == alone


def negate_maps(candidate: Path) -> None:
    """Damage a built candidate on purpose: anomaly_map and pred_score come out negated.

    A negated map ranks every part and pixel the other way round, so its AUROCs become
    1 − AUROC: a drop the gate must see, for a reason this test controls.
    """
    proto = onnx.load(str(candidate))
    for output in proto.graph.output:
        if output.name in (c.OUTPUT_ANOMALY_MAP, c.OUTPUT_PRED_SCORE):
            raw = f"{output.name}_before_damage"
            for node in proto.graph.node:
                node.output[:] = [raw if name == output.name else name for name in node.output]
                node.input[:] = [raw if name == output.name else name for name in node.input]
            proto.graph.node.append(
                onnx.helper.make_node("Neg", [raw], [output.name], name=f"damage_{output.name}")
            )
    onnx.save(proto, str(candidate))


@pytest.fixture
def damaged_fp16_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    """quantize_artifact builds its FP16 candidate as usual, then the candidate is damaged."""
    import export.quantize

    real_build = export.quantize.build_fp16

    def build_then_damage(fp32_path: Path, out_path: Path, settings=None) -> None:
        real_build(fp32_path, out_path, settings)
        negate_maps(out_path)

    monkeypatch.setattr(export.quantize, "build_fp16", build_then_damage)


def test_gate_refuses_a_candidate_that_loses_auroc_and_writes_nothing(
    tiny: TinyArtifact, tmp_path: Path, damaged_fp16_builds: None
) -> None:
    out = tmp_path / "model-fp16.onnx"
    settings = QuantizeSettings(precision="fp16", max_drop_points=0.5)
    fp32 = open_artifact(tiny.onnx_path)  # an artifact the caller already opened is used as it is
    outcome = quantize_artifact(fp32, out, tiny.data_root, [CATEGORY], settings)
    fp32, damaged = outcome.fp32_metrics["mean"], outcome.quantized_metrics["mean"]
    for level in ("image", "pixel"):  # the damage inverts the ranking, nothing else
        assert damaged[level]["auroc"] == pytest.approx(1.0 - fp32[level]["auroc"], abs=0.01)
    assert not outcome.gate.passed and max(outcome.gate.drops_points.values()) > 10.0
    assert outcome.written is None
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_cli_quantize_refused_by_gate_exits_3_and_writes_nothing(
    tiny: TinyArtifact, tmp_path: Path, capsys: pytest.CaptureFixture, damaged_fp16_builds: None
) -> None:
    out, report = tmp_path / "model-fp16.onnx", tmp_path / "results" / "quantize.json"
    argv = ["quantize", "--model", str(tiny.onnx_path), "--precision", "fp16", "--out", str(out)]
    argv += ["--data-root", str(tiny.data_root), "--category", CATEGORY, "--results", str(report)]
    assert cli.main(argv) == GATE_EXIT_STATUS
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["results"]
    doc = json.loads(report.read_text())
    assert doc["written"] is None and doc["gate"]["passed"] is False
    keep_float = DEFAULT_KEEP_FLOAT["efficientnet_lite0"]  # the encoder's default, not null: as used
    assert doc["settings"]["exclude_name_patterns"] == list(keep_float)
    assert doc["command"].startswith("inp-export")
    assert "refused" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("encoder", "given", "expected"),
    [
        ("efficientnet_lite0", None, DEFAULT_KEEP_FLOAT["efficientnet_lite0"]),
        ("dinov2_vits14_reg4", None, ()),
        ("efficientnet_lite0", ("/model/decoder.0/",), ("/model/decoder.0/",)),
        ("efficientnet_lite0", (), ()),  # --quantize-all
    ],
)
def test_keep_float_default_comes_from_the_encoder_unless_given(encoder, given, expected) -> None:
    settings = resolve_keep_float(QuantizeSettings(exclude_name_patterns=given), encoder)
    assert settings.exclude_name_patterns == expected
