"""Versioned training checkpoints: save atomically, read with clear errors, rebuild the model.

A checkpoint holds the trainable head only, never the frozen encoder's weights: it names the
encoder and the file its weights came from, so ``load_model`` can rebuild the same model.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from edge.atomic import atomic_writer
from export.model.base import FrozenEncoder
from export.model.inp_former import INPFormer

FORMAT = "inp-edge-checkpoint/1"
HEAVY_KEYS = ("trainable_state", "optimizer_state", "rng")  # left out of ``LoadedModel.meta``
REQUIRED_KEYS = ("encoder", "transform", "head", "trainable_state")


class CheckpointError(Exception):
    """A checkpoint file is missing, unreadable or of another format."""


@dataclass(frozen=True)
class LoadedModel:
    model: INPFormer  # in eval mode
    meta: dict[str, Any]  # everything in the checkpoint except weights, optimizer and RNG states


def save_checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically (a crash mid-write keeps the previous checkpoint)."""
    with atomic_writer(path) as handle:
        torch.save({"format": FORMAT, **payload}, handle)
    return Path(path)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Read and check a checkpoint; every failure names the file and the fix."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint at {path}; check the path, or train one first (export.train.train / "
            "`inp-export train`)"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated / foreign files
        raise CheckpointError(
            f"{path} is not a readable checkpoint ({type(exc).__name__}: {exc}); the file is truncated, "
            "corrupt or not a checkpoint: retrain, or pick another checkpoint file"
        ) from exc
    found = payload.get("format") if isinstance(payload, dict) else None
    if found != FORMAT:
        raise CheckpointError(
            f"{path} has format {found!r}, expected {FORMAT!r}; it was not written by export.train "
            "(or by an incompatible version): retrain with this version"
        )
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise CheckpointError(f"{path} lacks the keys {missing}; the file is damaged: retrain")
    return payload


def build_encoder_from_record(
    record: dict[str, Any], *, weights: Path | None, input_size_px: int | None
) -> FrozenEncoder:
    """Rebuild the frozen encoder a checkpoint names."""
    from export.model.encoders import build_encoder  # the encoder back-ends load lazily

    if record.get("random_weights"):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(record.get("init_seed", 0)))
            return build_encoder(record["name"], random_weights=True, input_size_px=input_size_px)
    expected = record.get("weights_file")
    if expected and weights is None:
        raise CheckpointError(
            f"the model was trained with encoder {record['name']!r} weights from {expected!r}; "
            f"pass encoder_weights=<path to {expected}>"
        )
    if expected and weights is not None and Path(weights).name != expected:
        warnings.warn(
            f"encoder weights {weights} differ in name from the training file {expected!r}", stacklevel=3
        )
    return build_encoder(record["name"], weights_path=weights, input_size_px=input_size_px)


def load_model(
    path: Path, *, encoder_weights: Path | None = None, encoder: FrozenEncoder | None = None
) -> LoadedModel:
    """Rebuild the trained INP-Former from a checkpoint (eval mode).

    ``encoder`` replaces the encoder the checkpoint names (a custom or test encoder); its spec
    name must match the recorded one.
    """
    payload = read_checkpoint(path)
    record = payload["encoder"]
    if encoder is None:
        crop_px = int(payload["transform"]["crop_px"])
        encoder = build_encoder_from_record(record, weights=encoder_weights, input_size_px=crop_px)
    elif encoder.spec.name != record["name"]:
        raise CheckpointError(
            f"{path} was trained on encoder {record['name']!r}, not {encoder.spec.name!r}; "
            "pass the matching encoder"
        )
    head = payload["head"]
    model = INPFormer(encoder, num_inps=int(head["num_inps"]), mlp_ratio=float(head["mlp_ratio"]))
    try:
        model.load_trainable_state_dict(payload["trainable_state"])
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    model.eval()
    meta = {key: value for key, value in payload.items() if key not in HEAVY_KEYS}
    return LoadedModel(model=model, meta=meta)
