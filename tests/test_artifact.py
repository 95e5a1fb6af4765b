"""Contract 1 as built: a real trained model, exported, opened by the edge runtime.

One tiny INP-Former (real EfficientNet-Lite0 encoder, 3 epochs on 8 drawn 64 px washers) is trained
and exported once per test session; ``test_quantize.py`` reuses it through ``build_tiny_artifact``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from edge.errors import ModelContractError
from edge.model import contract as c
from edge.model.session import LoadedModel, SessionSettings, open_session, run_model
from export.artifact import export_checkpoint
from export.checkpoint import load_model
from export.data import ImageTransform, read_rgb
from export.model.encoders import encoder_spec
from export.model.postprocess import MapSettings
from export.onnx_eval import calibration_feeds, open_artifact, to_uint8_nhwc
from export.onnx_export import ExportGraph, map_settings_of
from export.quantize import QuantizeSettings, build_fp16, build_int8, set_precision
from export.synthetic import SyntheticSpec, write_synthetic_dataset
from export.train import TrainConfig, train

SIZE_PX = 64
N_TRAIN = 8
CATEGORY = "washer"
ENCODER = "efficientnet_lite0"
MAX_IR_VERSION = 10  # onnxruntime 1.31 reads up to 13; the contract keeps to what older runtimes read
PARITY_BOUND = 1e-3
CPU_ONLY = SessionSettings(providers=("cpu",), intra_op_threads=1, warmup_runs=1)
OUTPUT_NAMES = (c.OUTPUT_ANOMALY_MAP, c.OUTPUT_PRED_SCORE, c.OUTPUT_PATCH_FEATURES, c.OUTPUT_INP_DISTANCE)


@dataclass(frozen=True)
class TinyArtifact:
    data_root: Path  # MVTec layout with one category, CATEGORY
    checkpoint: Path
    onnx_path: Path  # fp32 artifact from export_checkpoint
    metadata: c.ModelMetadata  # what export_checkpoint wrote into it


_BUILT: dict[str, TinyArtifact] = {}


def build_tiny_artifact(factory: pytest.TempPathFactory) -> TinyArtifact:
    """Train and export the tiny washer model once per session (a few seconds on 2 cores)."""
    if CATEGORY not in _BUILT:
        base = factory.mktemp("tiny-artifact")
        root = base / "data"
        spec = SyntheticSpec(size_px=SIZE_PX, n_train=N_TRAIN, n_test_good=4, n_test_defect=4)
        write_synthetic_dataset(root, spec)
        config = TrainConfig(
            data_root=root,
            categories=(CATEGORY,),
            encoder=ENCODER,
            crop_px=SIZE_PX,
            resize_px=SIZE_PX,
            epochs=3,
            batch_size=4,
            warmup_steps=2,
            num_threads=1,
            out_dir=base / "run",
        )
        result = train(config, progress=False)
        outcome = export_checkpoint(result.checkpoint_path, base / "model.onnx")
        _BUILT[CATEGORY] = TinyArtifact(root, result.checkpoint_path, outcome.path, outcome.metadata)
    return _BUILT[CATEGORY]


def relative_error(actual: np.ndarray, reference: np.ndarray) -> float:
    """max |a − b| / max |b|."""
    return float(np.abs(actual - reference).max() / np.abs(reference).max())


def torch_outputs(graph: ExportGraph, image_u8: np.ndarray) -> dict[str, np.ndarray]:
    with torch.no_grad():
        values = graph(torch.from_numpy(image_u8))
    return {name: value.numpy() for name, value in zip(OUTPUT_NAMES, values, strict=True)}


def assert_parity(graph: ExportGraph, path: Path, images_u8: list[np.ndarray]) -> None:
    """anomaly_map and pred_score of onnxruntime (FP32) within PARITY_BOUND of the torch graph."""
    loaded = open_artifact(path, threads=1)
    for image in images_u8:
        expected = torch_outputs(graph, image)
        actual = run_model(loaded, image)
        for name in (c.OUTPUT_ANOMALY_MAP, c.OUTPUT_PRED_SCORE):
            error = relative_error(actual[name], expected[name])
            assert error <= PARITY_BOUND, f"{name}: onnxruntime vs torch relative error {error:.2e}"


def write_without_output(source: Path, output: str, destination: Path) -> Path:
    proto = onnx.load(str(source))
    kept = [value for value in proto.graph.output if value.name != output]
    assert len(kept) == len(proto.graph.output) - 1, f"{source} has no output {output} to drop"
    del proto.graph.output[:]
    proto.graph.output.extend(kept)
    onnx.save(proto, str(destination))
    return destination


def write_without_metadata(source: Path, key: str, destination: Path) -> Path:
    proto = onnx.load(str(source))
    kept = [(entry.key, entry.value) for entry in proto.metadata_props if entry.key != key]
    assert len(kept) == len(proto.metadata_props) - 1, f"{source} has no metadata key {key} to drop"
    del proto.metadata_props[:]
    for name, value in kept:
        entry = proto.metadata_props.add()
        entry.key, entry.value = name, value
    onnx.save(proto, str(destination))
    return destination


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyArtifact:
    return build_tiny_artifact(tmp_path_factory)


def build_variant(tiny: TinyArtifact, precision: str, factory: pytest.TempPathFactory) -> Path:
    """The fp32 artifact, or its int8 / fp16 variant built once per session."""
    if precision == "fp32":
        return tiny.onnx_path
    if precision not in _VARIANTS:
        folder = factory.mktemp(f"variant-{precision}")
        candidate = folder / f"candidate-{precision}.onnx"
        if precision == "int8":
            transform = ImageTransform(resize_px=SIZE_PX, crop_px=SIZE_PX)
            feeds = calibration_feeds(tiny.data_root, [CATEGORY], transform, N_TRAIN)
            build_int8(tiny.onnx_path, candidate, feeds, QuantizeSettings(calibration_count=N_TRAIN))
        else:
            build_fp16(tiny.onnx_path, candidate)
        _VARIANTS[precision] = set_precision(candidate, precision, folder / f"model-{precision}.onnx")
    return _VARIANTS[precision]


_VARIANTS: dict[str, Path] = {}


@pytest.fixture(scope="module", params=["fp32", pytest.param("int8", marks=pytest.mark.slow), "fp16"])
def variant(request, tiny: TinyArtifact, tmp_path_factory) -> tuple[str, Path, LoadedModel]:
    path = build_variant(tiny, request.param, tmp_path_factory)
    return request.param, path, open_session(path, CPU_ONLY)


def test_artifact_input_is_one_uint8_nhwc_rgb_image(variant) -> None:
    _, _, loaded = variant
    inputs = [(arg.name, arg.type, list(arg.shape)) for arg in loaded.session.get_inputs()]
    assert inputs == [(c.INPUT_IMAGE, "tensor(uint8)", [1, SIZE_PX, SIZE_PX, 3])]
    assert loaded.info.input_hw == (SIZE_PX, SIZE_PX)


def test_artifact_outputs_have_contract_names_dtypes_and_shapes(variant, tiny: TinyArtifact) -> None:
    _, _, loaded = variant
    assert loaded.info.outputs == OUTPUT_NAMES
    assert [arg.type for arg in loaded.session.get_outputs()] == ["tensor(float)"] * 4
    spec = encoder_spec(ENCODER, input_size_px=SIZE_PX)
    tokens = (SIZE_PX // spec.stride_px) ** 2
    image = read_rgb(tiny.data_root / CATEGORY / "test" / "scratch" / "000.png")
    values = run_model(loaded, image)
    expected = {
        c.OUTPUT_ANOMALY_MAP: (1, SIZE_PX, SIZE_PX),
        c.OUTPUT_PRED_SCORE: (1,),
        c.OUTPUT_PATCH_FEATURES: (1, tokens, spec.embed_dim),
        c.OUTPUT_INP_DISTANCE: (1, SIZE_PX, SIZE_PX),
    }
    assert {name: value.shape for name, value in values.items()} == expected
    assert all(value.dtype == np.float32 and np.isfinite(value).all() for value in values.values())


def test_artifact_metadata_has_every_required_key(variant, tiny: TinyArtifact) -> None:
    precision, path, loaded = variant
    metadata = loaded.session.get_modelmeta().custom_metadata_map
    assert [key for key in c.REQUIRED_METADATA if key not in metadata] == []
    assert metadata[c.META_SCHEMA_VERSION] == c.SCHEMA_VERSION
    assert metadata[c.META_PRECISION] == precision == loaded.info.precision
    assert metadata[c.META_INPUT_SIZE] == f"{SIZE_PX}x{SIZE_PX}"
    assert metadata[c.META_ENCODER] == ENCODER
    typed = c.ModelMetadata.from_props(metadata, path)
    written = dataclasses.replace(tiny.metadata, precision=precision)  # as export wrote it, precision stamped
    assert dataclasses.replace(typed, extra=written.extra) == written
    assert not [key for key in typed.extra if key.startswith("inp_edge.")]  # tools' own keys only (INT8)
    assert loaded.info.meta == typed
    assert typed.score_stats.n == N_TRAIN
    assert typed.score_stats.min <= typed.score_stats.p50 <= typed.score_stats.max
    assert typed.training_data.categories == (CATEGORY,)
    assert typed.preprocess.resize_px == SIZE_PX and typed.crop_px == SIZE_PX
    assert typed.preprocess.resize_method == c.RESIZE_METHOD


def test_artifact_passes_onnx_checker_with_ir_version_at_most_10(variant) -> None:
    _, path, _ = variant
    onnx.checker.check_model(str(path), full_check=True)
    proto = onnx.load(str(path))
    assert proto.ir_version <= MAX_IR_VERSION
    assert {entry.domain or "ai.onnx": entry.version for entry in proto.opset_import} == {"ai.onnx": 17}


def test_artifact_file_is_readable_by_other_users(tiny: TinyArtifact) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(tiny.onnx_path.stat().st_mode) & 0o444 == 0o444 & ~umask  # not mkstemp's 0600


@pytest.mark.parametrize("output", c.REQUIRED_OUTPUTS)
def test_missing_output_is_a_contract_error_naming_it(
    tiny: TinyArtifact, tmp_path: Path, output: str
) -> None:
    broken = write_without_output(tiny.onnx_path, output, tmp_path / "broken.onnx")
    with pytest.raises(ModelContractError, match=f"no output '{output}'") as caught:
        open_session(broken, CPU_ONLY)
    assert "inp-export export" in caught.value.fix


@pytest.mark.parametrize("key", c.REQUIRED_METADATA)
def test_missing_metadata_key_is_a_contract_error_naming_it(
    tiny: TinyArtifact, tmp_path: Path, key: str
) -> None:
    broken = write_without_metadata(tiny.onnx_path, key, tmp_path / "broken.onnx")
    with pytest.raises(ModelContractError, match=re.escape(key)) as caught:
        open_session(broken, CPU_ONLY)
    assert "lacks metadata key" in caught.value.message
    assert "inp-export export" in caught.value.fix


def test_onnxruntime_matches_torch_on_synthetic_images(tiny: TinyArtifact) -> None:
    graph = ExportGraph(load_model(tiny.checkpoint).model, (SIZE_PX, SIZE_PX), MapSettings()).eval()
    folder = tiny.data_root / CATEGORY / "test"
    images = [read_rgb(folder / kind / "000.png")[None] for kind in ("good", "scratch", "spot")]
    assert_parity(graph, tiny.onnx_path, images)


def link_bottle_subset(datasets: Path, root: Path, count: int) -> Path:
    """``root/bottle/train/good`` with symlinks to the first ``count`` real images (nothing copied)."""
    source = datasets / "mvtec_ad" / "bottle" / "train" / "good"
    target = root / "bottle" / "train" / "good"
    target.mkdir(parents=True)
    for path in sorted(source.glob("*.png"))[:count]:
        (target / path.name).symlink_to(path)
    return root


@pytest.mark.slow
@pytest.mark.datasets
def test_onnxruntime_matches_torch_on_real_bottle_images(datasets: Path, tmp_path: Path) -> None:
    root = link_bottle_subset(datasets, tmp_path / "data", N_TRAIN)
    config = TrainConfig(
        data_root=root,
        categories=("bottle",),
        crop_px=128,
        epochs=2,
        batch_size=4,
        warmup_steps=2,
        num_threads=1,
        out_dir=tmp_path / "run",
    )
    checkpoint = train(config, progress=False).checkpoint_path
    outcome = export_checkpoint(checkpoint, tmp_path / "bottle.onnx")
    loaded = load_model(checkpoint)
    transform = loaded.meta.transform
    graph = ExportGraph(
        loaded.model, outcome.metadata.input_hw, map_settings_of(outcome.metadata.preprocess)
    ).eval()
    test = datasets / "mvtec_ad" / "bottle" / "test"
    images = [
        to_uint8_nhwc(transform.image(read_rgb(test / kind / "000.png")))
        for kind in ("good", "broken_large", "contamination")
    ]
    assert_parity(graph, outcome.path, images)
