"""Official INP-Former checkpoints (luow23/INP-Former): strict key map, errors naming keys, conversion."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch
from torch import Tensor

from export.artifact import NOT_RECORDED, score_source
from export.checkpoint import FORMAT, load_model
from export.commands.convert_official import COMMAND
from export.data import ImageTransform
from export.model.dinov2 import resize_pos_embed
from export.model.inp_former import INPFormer
from export.model.official import (
    OfficialCheckpointError,
    check_official_state,
    load_official_checkpoint,
    never_run_keys,
    official_key_map,
    read_official_state_dict,
    release_settings,
)
from export.official_convert import convert_official_checkpoint, is_official_release
from tests.test_encoders import official_dinov2_shapes

INPUT_PX = 56  # 4×4 tokens: the smallest grid that keeps the test fast
RELEASE_FOLDER = (
    "INP-Former-Multi-Class_dataset=MVTec-AD_Encoder=dinov2reg_vit_small_14_Resize=448_Crop=392_INP_num=6"
)
VARIANTS = {  # our name: (C, heads, depth), INP_FORMER.md §1
    "dinov2_vits14_reg4": (384, 6, 12),
    "dinov2_vitb14_reg4": (768, 12, 12),
    "dinov2_vitl14_reg4": (1024, 16, 24),
}


def official_head_shapes(dim: int, heads: int, num_inps: int = 6) -> dict[str, tuple[int, ...]]:
    """Key → shape of the authors' INP_Former outside the encoder (INP_FORMER.md §3-§5, models/*.py)."""
    mlp = {
        "fc1.weight": (4 * dim, dim),
        "fc1.bias": (4 * dim,),
        "fc2.weight": (dim, 4 * dim),
        "fc2.bias": (dim,),
    }
    block = {
        "norm1.weight": (dim,),
        "norm1.bias": (dim,),
        "attn.q.weight": (dim, dim),
        "attn.q.bias": (dim,),
        "attn.kv.weight": (2 * dim, dim),
        "attn.kv.bias": (2 * dim,),
        "attn.proj.weight": (dim, dim),
        "attn.proj.bias": (dim,),
        "norm2.weight": (dim,),
        "norm2.bias": (dim,),
        **{f"mlp.{key}": shape for key, shape in mlp.items()},
    }
    shapes: dict[str, tuple[int, ...]] = {"prototype_token": (num_inps, dim)}
    shapes.update({f"bottleneck.0.{key}": shape for key, shape in mlp.items()})
    shapes.update({f"aggregation.0.{key}": shape for key, shape in block.items()})
    for index in range(8):
        shapes.update({f"decoder.{index}.{key}": shape for key, shape in block.items()})
        shapes[f"decoder.{index}.attn.learn_scale"] = (heads, 1, 1)
    return shapes


def official_shapes(variant: str, num_inps: int = 6) -> dict[str, tuple[int, ...]]:
    dim, heads, depth = VARIANTS[variant]
    shapes = {f"encoder.{key}": shape for key, shape in official_dinov2_shapes(dim, depth).items()}
    return shapes | official_head_shapes(dim, heads, num_inps)


def our_key(theirs: str) -> str:
    """Where each of their tensors belongs in our INPFormer, written down apart from the converter."""
    renames = (("prototype_token", "inp_tokens"), ("bottleneck.0.", "bottleneck."))
    renames += (("aggregation.0.", "inp_extractor."), (".attn.learn_scale", ".attn.scale"))
    for old, new in renames:
        theirs = theirs.replace(old, new)
    return theirs


def shape_only_state(variant: str, num_inps: int = 6) -> dict[str, Tensor]:
    return {
        key: torch.empty(shape, device="meta") for key, shape in official_shapes(variant, num_inps).items()
    }


@pytest.fixture(scope="module")
def official_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    generator = torch.Generator().manual_seed(7)
    state = {
        key: torch.randn(shape, generator=generator) * 0.05
        for key, shape in official_shapes("dinov2_vits14_reg4").items()
    }
    path = tmp_path_factory.mktemp("saved_results") / RELEASE_FOLDER / "model.pth"
    path.parent.mkdir()
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def direct_model(official_file: Path) -> INPFormer:
    return load_official_checkpoint(official_file, input_size_px=INPUT_PX)


def test_every_tensor_of_the_file_lands_in_the_matching_tensor_of_our_model(
    official_file: Path, direct_model: INPFormer
) -> None:
    stored = torch.load(official_file, map_location="cpu", weights_only=True)
    ours = direct_model.state_dict()
    assert official_key_map("dinov2_vits14_reg4") == {key: our_key(key) for key in stored}
    assert sorted(our_key(key) for key in stored) == sorted(ours)  # nothing of ours left at its init
    differing = [key for key, tensor in stored.items() if not torch.equal(ours[our_key(key)], tensor)]
    assert differing == []
    assert direct_model.encoder.spec.name == "dinov2_vits14_reg4"  # inferred from the shapes
    expected_pos = resize_pos_embed(stored["encoder.pos_embed"], (4, 4))
    assert torch.equal(direct_model.encoder.grid_pos_embed, expected_pos)  # refreshed from the file
    assert not any(p.requires_grad for p in direct_model.encoder.parameters())
    assert all(p.requires_grad for p in direct_model.trainable_parameters())


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda state: state.pop("decoder.5.attn.learn_scale"),
            r"missing key decoder\.5\.attn\.learn_scale \(expected shape \(6, 1, 1\)\)",
        ),
        (
            lambda state: state.update({"decoder.8.attn.learn_scale": torch.ones(6, 1, 1)}),
            r"unknown key decoder\.8\.attn\.learn_scale \(shape \(6, 1, 1\)\)",
        ),
        (
            lambda state: state.update({"prototype_token": torch.zeros(1, 6, 384)}),
            r"shape of prototype_token: expected \(6, 384\), found \(1, 6, 384\)",
        ),
        (
            lambda state: state.update({"encoder.blocks.3.attn.qkv.weight": torch.zeros(384, 384)}),
            r"shape of encoder\.blocks\.3\.attn\.qkv\.weight: expected \(1152, 384\), found \(384, 384\)",
        ),
    ],
    ids=["missing", "unknown", "prototype-shape", "encoder-shape"],
)
def test_key_problem_is_an_error_naming_the_key_and_shapes(edit, message: str) -> None:
    state = shape_only_state("dinov2_vits14_reg4")
    edit(state)
    with pytest.raises(OfficialCheckpointError, match=rf"model\.pth does not fit .*\n.*{message}"):
        check_official_state(state, where="model.pth")


def test_missing_key_in_a_file_is_named_with_the_file(official_file: Path, tmp_path: Path) -> None:
    state = read_official_state_dict(official_file)
    del state["aggregation.0.attn.kv.bias"]
    damaged = tmp_path / "model.pth"
    torch.save({"model": state}, damaged)  # a re-packed state dict is read as well
    with pytest.raises(
        OfficialCheckpointError, match=r"(?s)model\.pth does not fit.*missing key aggregation"
    ):
        load_official_checkpoint(damaged)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variant_and_inp_count_are_inferred_from_the_shapes(variant: str) -> None:
    layout = check_official_state(shape_only_state(variant, num_inps=10))
    assert (layout.variant, layout.num_inps) == (variant, 10)


def test_wrong_variant_says_which_variant_the_file_looks_like() -> None:
    state = shape_only_state("dinov2_vitb14_reg4")
    with pytest.raises(OfficialCheckpointError) as caught:
        check_official_state(state, variant="dinov2reg_vit_small_14")  # their name for ViT-S
    assert "shape of encoder.cls_token: expected (1, 1, 384), found (1, 1, 768)" in str(caught.value)
    assert "looks like dinov2_vitb14_reg4" in caught.value.fix


def test_meta_encoder_file_is_recognised_as_not_an_inp_former_checkpoint() -> None:
    state = {key: torch.empty(shape, device="meta") for key, shape in official_dinov2_shapes(384, 12).items()}
    with pytest.raises(OfficialCheckpointError, match="Meta's DINOv2 encoder file alone"):
        check_official_state(state)


def test_our_own_checkpoint_format_points_to_load_model(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    torch.save({"format": FORMAT, "trainable_state": {}}, path)
    with pytest.raises(OfficialCheckpointError) as caught:
        read_official_state_dict(path)
    assert "inp-edge checkpoint" in str(caught.value) and "load_model" in caught.value.fix


def test_encoder_blocks_after_the_last_tap_are_loaded_but_listed_as_never_run() -> None:
    never_run = never_run_keys("dinov2_vits14_reg4")
    blocks = {key.split(".")[2] for key in never_run if key.startswith("encoder.blocks.")}
    assert blocks == {"10", "11"}
    assert {"encoder.norm.weight", "encoder.mask_token"} <= set(never_run)
    assert set(never_run) <= set(official_key_map("dinov2_vits14_reg4"))
    assert len([k for k in never_run_keys("dinov2_vitl14_reg4") if ".blocks." in k]) == 5 * 14  # 19..23


def test_release_folder_name_gives_the_settings() -> None:
    assert release_settings(RELEASE_FOLDER) == {
        "setting": "INP-Former-Multi-Class",
        "dataset": "MVTec-AD",
        "Encoder": "dinov2reg_vit_small_14",
        "Resize": "448",
        "Crop": "392",
        "INP_num": "6",
    }
    assert release_settings("my_run") == {}


def test_converted_checkpoint_loads_through_load_model_with_identical_outputs(
    official_file: Path, direct_model: INPFormer, tmp_path: Path
) -> None:
    result = convert_official_checkpoint(official_file, tmp_path / "official.pt", input_size_px=INPUT_PX)
    assert result.encoder_weights_path == tmp_path / "dinov2_vits14_reg4_pretrain.pth"
    encoder_keys = set(torch.load(result.encoder_weights_path, weights_only=True))
    assert encoder_keys == set(official_dinov2_shapes(384, 12))  # a complete Meta-format file
    loaded = load_model(result.checkpoint_path, encoder_weights=result.encoder_weights_path)
    assert is_official_release(loaded.meta.training_data)
    assert score_source(loaded.meta.training_data) == NOT_RECORDED  # its export says so, not "in-sample"
    assert loaded.meta.transform == ImageTransform(resize_px=64, crop_px=INPUT_PX)
    source = json.loads(result.source_path.read_text())
    assert source["folder_settings"]["dataset"] == "MVTec-AD" and source["keys_loaded"] == 315
    images = torch.rand(2, 3, INPUT_PX, INPUT_PX, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, actual = direct_model(images), loaded.model(images)
    for ours, theirs in zip(
        expected.decoder_groups + expected.encoder_groups,
        actual.decoder_groups + actual.encoder_groups,
        strict=True,
    ):
        assert torch.equal(ours, theirs)
    assert expected.decoder_groups[0].abs().max() > 0


def test_conversion_refuses_to_replace_a_different_encoder_file(official_file: Path, tmp_path: Path) -> None:
    other = tmp_path / "dinov2_vits14_reg4_pretrain.pth"
    torch.save({"cls_token": torch.zeros(1, 1, 384)}, other)
    with pytest.raises(OfficialCheckpointError, match="already exists and holds other encoder weights"):
        convert_official_checkpoint(official_file, tmp_path / "official.pt", input_size_px=INPUT_PX)
    assert not (tmp_path / "official.pt").exists()


def test_convert_command_converts_and_names_a_missing_file(
    official_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    COMMAND.add_arguments(parser)
    missing = parser.parse_args(["--official", str(tmp_path / "nope.pth"), "--out", str(tmp_path / "a.pt")])
    with pytest.raises(OfficialCheckpointError, match=r"no official INP-Former checkpoint at .*nope\.pth"):
        COMMAND.run(missing)
    args = ["--official", str(official_file), "--out", str(tmp_path / "b.pt"), "--input-size", str(INPUT_PX)]
    assert COMMAND.run(parser.parse_args([*args, "--variant", "dinov2reg_vit_small_14"])) == 0
    assert "dinov2_vits14_reg4, M=6 INPs" in capsys.readouterr().out
    assert (tmp_path / "b.pt").is_file() and (tmp_path / "dinov2_vits14_reg4_pretrain.pth").is_file()
