"""Versioned training checkpoints: save atomically, read with clear errors, rebuild the model.

A checkpoint holds the trainable head only, never the frozen encoder's weights: it names the
encoder and the file its weights came from, so ``load_model`` can rebuild the same model. What it
says about itself is a typed ``CheckpointMeta`` (export/checkpoint_meta.py); the tensors (head
weights, optimizer state, RNG states) sit beside it in a ``Checkpoint``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from edge.atomic import atomic_writer
from export.checkpoint_meta import (
    META_KEYS,
    RETRAIN_FIX,
    CheckpointError,
    CheckpointMeta,
    EncoderRecord,
    HeadSettings,
    TrainProgress,
)
from export.model.base import FrozenEncoder
from export.model.inp_former import INPFormer

__all__ = [
    "FORMAT",
    "Checkpoint",
    "CheckpointError",
    "CheckpointMeta",
    "EncoderRecord",
    "HeadSettings",
    "LoadedModel",
    "TrainProgress",
    "load_model",
    "read_checkpoint",
    "save_checkpoint",
]

FORMAT = "inp-edge-checkpoint/1"
TENSOR_KEYS = ("trainable_state", "optimizer_state", "rng")
REQUIRED_KEYS = ("encoder", "transform", "head", "training_data", "trainable_state")


@dataclass(frozen=True)
class Checkpoint:
    """One checkpoint file, read and checked."""

    path: Path
    meta: CheckpointMeta
    trainable_state: Mapping[str, Tensor]
    optimizer_state: Mapping[str, Any] | None = None  # None: the run cannot be resumed from it
    rng: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class LoadedModel:
    model: INPFormer  # in eval mode
    meta: CheckpointMeta


def save_checkpoint(
    path: Path,
    meta: CheckpointMeta,
    trainable_state: Mapping[str, Tensor],
    *,
    optimizer_state: Mapping[str, Any] | None = None,
    rng: Mapping[str, Any] | None = None,
) -> Path:
    """Write the checkpoint to ``path`` atomically (a crash mid-write keeps the previous one)."""
    payload: dict[str, Any] = {
        "format": FORMAT,
        **meta.to_payload(),
        "trainable_state": dict(trainable_state),
    }
    if optimizer_state is not None:
        payload["optimizer_state"] = optimizer_state
    if rng is not None:
        payload["rng"] = rng
    with atomic_writer(path) as handle:
        torch.save(payload, handle)
    return Path(path)


def read_checkpoint(path: Path) -> Checkpoint:
    """Read and check a checkpoint; every failure is a ``CheckpointError`` naming the file and the fix."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint at {path}",
            fix="check the path, or train one first with `inp-export train` (it writes checkpoint.pt)",
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated / foreign files
        first_line = (str(exc).strip().splitlines() or [""])[0][:200]
        raise CheckpointError(
            f"{path} is not a readable checkpoint ({type(exc).__name__}: {first_line}); the file is "
            "truncated, corrupt or not a checkpoint",
            fix=RETRAIN_FIX,
        ) from None
    found = payload.get("format") if isinstance(payload, dict) else None
    if found != FORMAT:
        raise CheckpointError(
            f"{path} has format {found!r}, expected {FORMAT!r}: it was not written by `inp-export train` "
            "(or by an incompatible version)",
            fix="retrain with this version of inp-export",
        )
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    unknown = sorted(set(payload) - {"format", *META_KEYS, *TENSOR_KEYS})
    if missing or unknown:
        parts = ([f"lacks the keys {missing}"] if missing else []) + (
            [f"has unknown keys {unknown}"] if unknown else []
        )
        raise CheckpointError(
            f"{path} {' and '.join(parts)}: the file is damaged or foreign", fix=RETRAIN_FIX
        )
    return Checkpoint(
        path=path,
        meta=CheckpointMeta.from_payload(payload, path),
        trainable_state=payload["trainable_state"],
        optimizer_state=payload.get("optimizer_state"),
        rng=payload.get("rng"),
    )


def build_encoder_from_record(
    record: EncoderRecord, *, weights: Path | None, input_size_px: int | None
) -> FrozenEncoder:
    """Rebuild the frozen encoder a checkpoint names."""
    from export.model.encoders import build_encoder  # the encoder back-ends load lazily

    if record.random_weights:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(record.init_seed or 0))
            return build_encoder(record.name, random_weights=True, input_size_px=input_size_px)
    expected = record.weights_file
    if expected and weights is None:
        raise CheckpointError(
            f"the model was trained with encoder {record.name!r} weights from {expected!r}, "
            "which are not part of the checkpoint",
            fix=f"pass --encoder-weights <path to {expected}> (from Python: encoder_weights=...)",
        )
    if expected and weights is not None and Path(weights).name != expected:
        warnings.warn(
            f"encoder weights {weights} differ in name from the training file {expected!r}", stacklevel=3
        )
    return build_encoder(record.name, weights_path=weights, input_size_px=input_size_px)


def load_model(
    path: Path, *, encoder_weights: Path | None = None, encoder: FrozenEncoder | None = None
) -> LoadedModel:
    """Rebuild the trained INP-Former from a checkpoint (eval mode).

    ``encoder`` replaces the encoder the checkpoint names (a custom or test encoder); its spec
    name must match the recorded one.
    """
    checkpoint = read_checkpoint(path)
    meta = checkpoint.meta
    if encoder is None:
        encoder = build_encoder_from_record(
            meta.encoder, weights=encoder_weights, input_size_px=meta.transform.crop_px
        )
    elif encoder.spec.name != meta.encoder.name:
        raise CheckpointError(
            f"{path} was trained on encoder {meta.encoder.name!r}, not {encoder.spec.name!r}",
            fix="pass the matching encoder",
        )
    model = INPFormer(encoder, num_inps=meta.head.num_inps, mlp_ratio=meta.head.mlp_ratio)
    try:
        model.load_trainable_state_dict(dict(checkpoint.trainable_state))
    except ValueError as exc:  # names the keys / shapes that do not fit
        raise CheckpointError(f"{path}: {exc}", fix=RETRAIN_FIX) from None
    model.eval()
    return LoadedModel(model=model, meta=meta)
