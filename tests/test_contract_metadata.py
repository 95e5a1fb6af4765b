"""Contract 1 on the device: a model's inputs, outputs and metadata are checked when it is opened."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto

from edge.errors import ModelContractError, ModelInputError
from edge.model import contract as c
from edge.model.session import CPU, open_session, run_model
from tests.tiny_models import CPU_ONLY, STATS, save_model, typed_metadata


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
