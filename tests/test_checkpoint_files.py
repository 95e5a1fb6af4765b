"""Checkpoints on disk: rebuilding the model, and every fault named with the file and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from edge.errors import InpEdgeError
from export.checkpoint import FORMAT, CheckpointError, load_model, read_checkpoint
from export.train import train
from tests.train_support import TinyEncoder, tiny_config, write_parts


@pytest.fixture
def parts(tmp_path: Path) -> Path:
    return write_parts(tmp_path)


# ---------------------------------------------------------------- checkpoints


def test_load_model_rebuilds_the_trained_model(parts: Path, tmp_path: Path) -> None:
    result = train(tiny_config(parts, tmp_path / "run", epochs=1), progress=False, encoder=TinyEncoder())
    loaded = load_model(result.checkpoint_path, encoder=TinyEncoder())
    saved = read_checkpoint(result.checkpoint_path).trainable_state
    for key, value in loaded.model.trainable_state_dict().items():
        assert torch.equal(value, saved[key])
    assert (loaded.meta.transform.resize_px, loaded.meta.transform.crop_px) == (36, 32)
    assert loaded.meta.training_data.num_images == 12 and loaded.meta.training_data.layout == "folder"
    assert loaded.meta.train_config == tiny_config(parts, tmp_path / "run", epochs=1)
    assert (loaded.meta.head.num_inps, loaded.meta.encoder.name) == (6, "tiny_test")
    rec = loaded.model(torch.rand(1, 3, 32, 32))
    assert rec.decoder_groups[0].shape == (1, 64, 16)


def test_corrupt_checkpoint_error_names_the_file_and_the_fix(parts: Path, tmp_path: Path) -> None:
    result = train(tiny_config(parts, tmp_path / "run", epochs=1), progress=False, encoder=TinyEncoder())
    data = result.checkpoint_path.read_bytes()
    broken = tmp_path / "broken.pt"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="retrain") as info:
        load_model(broken, encoder=TinyEncoder())
    assert str(broken) in str(info.value) and isinstance(info.value, InpEdgeError)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda p: p["head"].update(num_blocks=3), r"'head' has unknown \['num_blocks'\]"),
        (lambda p: p["transform"].update(crop_px="32"), r"transform\.crop_px='32' is not int"),
        (
            lambda p: p["training_data"].pop("fingerprint") and p["training_data"].pop("layout"),
            r"'training_data' lacks \['layout'\]",
        ),
        (lambda p: p.update(learning_rate=0.1), r"unknown keys \['learning_rate'\]"),
        (
            lambda p: p["training_data"].update(categories="bottle"),
            r"training_data\.categories='bottle' is not tuple\[str, \.\.\.\]",
        ),
        (
            lambda p: p["training_data"].update(images_per_category={"b": "many"}),
            r"training_data\.images_per_category=\{'b': 'many'\} is not Mapping\[str, int\]",
        ),
        (lambda p: p["encoder_spec"].update(groups=[[0, 1], [2, "3"]]), r"encoder_spec\.groups="),
        (lambda p: p["transform"].update(crop_px=4 * p["transform"]["resize_px"]), r"'transform' is invalid"),
    ],
    ids=[
        "unknown-field",
        "wrong-type",
        "missing-field",
        "unknown-key",
        "string-for-a-tuple",
        "mapping-of-wrong-values",
        "nested-tuple-item",
        "value-the-record-refuses",
    ],
)
def test_checkpoint_metadata_faults_name_the_key(parts: Path, tmp_path: Path, edit, message: str) -> None:
    result = train(tiny_config(parts, tmp_path / "run", epochs=1), progress=False, encoder=TinyEncoder())
    payload = torch.load(result.checkpoint_path, weights_only=True)
    edit(payload)
    edited = tmp_path / "edited.pt"
    torch.save(payload, edited)
    with pytest.raises(CheckpointError, match=message) as info:
        read_checkpoint(edited)
    assert str(edited) in str(info.value) and info.value.fix


def test_checkpoint_metadata_round_trips_through_the_payload(parts: Path, tmp_path: Path) -> None:
    from export.checkpoint import CheckpointMeta

    result = train(tiny_config(parts, tmp_path / "run", epochs=1), progress=False, encoder=TinyEncoder())
    meta = read_checkpoint(result.checkpoint_path).meta
    assert CheckpointMeta.from_payload(meta.to_payload(), result.checkpoint_path) == meta
    assert meta.encoder_spec == TinyEncoder().spec and meta.progress.total_steps == 3


def test_missing_checkpoint_error_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=f"no checkpoint at {tmp_path / 'nope.pt'}"):
        read_checkpoint(tmp_path / "nope.pt")


def test_foreign_file_error_names_the_expected_format(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(CheckpointError, match=FORMAT):
        read_checkpoint(path)
