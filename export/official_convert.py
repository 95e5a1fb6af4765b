"""An official INP-Former ``model.pth`` (luow23/INP-Former) rewritten in our checkpoint format.

Our checkpoint (export/checkpoint.py) holds the trainable head and NAMES the frozen encoder's
weights file; the official file holds both. So the conversion writes three files side by side:
the checkpoint; the encoder as a Meta-format ``<variant>_pretrain.pth`` (the official file's
tensors, which equal Meta's file: the encoder was frozen in training); and ``<name>.source.json``,
where the checkpoint came from. The checkpoint's training-data record is marked as an official
release by its fingerprint (``official-release:<sha256 of the file>``). docs/official-checkpoints.md.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from edge.atomic import atomic_writer, write_text_atomic
from edge.model.contract import TrainingData
from edge.model.contract_check import file_sha256
from export.checkpoint import CheckpointMeta, EncoderRecord, HeadSettings, save_checkpoint
from export.data import ImageTransform, list_categories
from export.model.encoders import read_state_dict
from export.model.inp_former import INPFormer
from export.model.official import (
    MLP_RATIO,
    RELEASE,
    OfficialCheckpointError,
    OfficialLayout,
    build_official_model,
    check_official_state,
    never_run_keys,
    read_official_state_dict,
    release_settings,
)

OFFICIAL_FINGERPRINT_PREFIX = "official-release:"


@dataclass(frozen=True)
class ConvertedCheckpoint:
    checkpoint_path: Path  # our format (export/checkpoint.py)
    encoder_weights_path: Path  # Meta-format DINOv2 weights extracted from the official file
    source_path: Path  # JSON: release, file, sha256, settings from the release folder name
    layout: OfficialLayout


def is_official_release(training_data: TrainingData) -> bool:
    """True for the training-data record of a converted official checkpoint."""
    return training_data.fingerprint.startswith(OFFICIAL_FINGERPRINT_PREFIX)


def convert_official_checkpoint(
    path: str | Path,
    out_path: str | Path,
    *,
    variant: str | None = None,
    input_size_px: int | None = None,
    data_root: str | Path | None = None,
    categories: Sequence[str] = (),
) -> ConvertedCheckpoint:
    """Write an official ``model.pth`` as our checkpoint, with its encoder in a Meta-format file beside it.

    Load the result with ``export.checkpoint.load_model(out_path, encoder_weights=<the encoder
    file>)``. ``data_root`` / ``categories`` are recorded as the data to evaluate on (categories
    default to those found in ``data_root``); ``input_size_px`` overrides the 392 px input.
    """
    path, out_path = Path(path), Path(out_path)
    if out_path.resolve() == path.resolve():
        raise OfficialCheckpointError(
            f"converting {path} onto itself", fix="pass another output path for the converted checkpoint"
        )
    state = read_official_state_dict(path)
    layout = check_official_state(state, variant=variant, where=str(path))
    model = build_official_model(state, layout, input_size_px=input_size_px)
    spec = model.encoder.spec
    encoder_path = _write_encoder_weights(model, out_path.parent / f"{spec.name}_pretrain.pth", source=path)
    sha256 = file_sha256(path)
    meta = CheckpointMeta(
        encoder=EncoderRecord(name=spec.name, weights_file=encoder_path.name),
        transform=ImageTransform(resize_px=spec.resize_px, crop_px=spec.input_size_px),
        head=HeadSettings(num_inps=layout.num_inps, mlp_ratio=MLP_RATIO),
        training_data=_release_record(path, sha256, data_root, categories),
        encoder_spec=spec,
    )
    save_checkpoint(out_path, meta, model.trainable_state_dict())
    source = {
        "source": "official release",
        "release": RELEASE,
        "file": str(path),
        "sha256": sha256,
        "folder_settings": release_settings(path.parent.name),
        "variant": layout.variant,
        "num_inps": layout.num_inps,
        "keys_loaded": len(state),
        "keys_never_run": len(never_run_keys(layout.variant)),
        "checkpoint": str(out_path),
        "encoder_weights": str(encoder_path),
        "converted_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    source_path = write_text_atomic(out_path.with_suffix(".source.json"), json.dumps(source, indent=2) + "\n")
    return ConvertedCheckpoint(out_path, encoder_path, source_path, layout)


def _write_encoder_weights(model: INPFormer, target: Path, *, source: Path) -> Path:
    """Meta-format encoder weights at ``target``; an existing file is reused only if it is identical."""
    state = model.encoder.state_dict()
    if target.exists():
        existing = read_state_dict(target)
        if existing.keys() == state.keys() and all(torch.equal(existing[k], state[k]) for k in state):
            return target
        raise OfficialCheckpointError(
            f"{target} already exists and holds other encoder weights than {source}",
            fix="write the converted checkpoint into another folder (its encoder file goes beside it), "
            "or remove that file",
        )
    with atomic_writer(target) as handle:
        torch.save(state, handle)
    return target


def _release_record(
    path: Path, sha256: str, data_root: str | Path | None, categories: Sequence[str]
) -> TrainingData:
    """Trained by the authors on files we do not know; categories are what to evaluate on."""
    setting = release_settings(path.parent.name).get("setting", "")
    names = tuple(categories) or (tuple(list_categories(Path(data_root))) if data_root is not None else ())
    return TrainingData(
        layout="mvtec",
        data_root=str(data_root) if data_root is not None else "",
        categories=names,
        images_per_category={},
        num_images=0,
        mode="few-shot" if "few" in setting.lower() else "full",
        fingerprint=f"{OFFICIAL_FINGERPRINT_PREFIX}{sha256[:16]}",
    )
