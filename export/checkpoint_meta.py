"""What a training checkpoint says about itself, as typed frozen values (``CheckpointMeta``).

On disk the checkpoint is one dict (see export/checkpoint.py); its records are plain JSON-like
values under fixed keys, so files written before these types existed still read. Here they are
parsed once, strictly: a missing or unknown field, or a value of the wrong type, is a
``CheckpointError`` naming the file and the key. Readers use attributes, never string keys.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from edge.errors import DataError, InpEdgeError
from edge.model.contract import TrainingData, parse_record
from export.data import ImageTransform
from export.model.base import EncoderSpec
from export.train_config import TrainConfig, config_from_json, config_json

RETRAIN_FIX = "retrain with `inp-export train` (or pick another checkpoint file)"


class CheckpointError(InpEdgeError):
    """A checkpoint file is missing, unreadable, of another format, or does not fit its use."""


@dataclass(frozen=True)
class EncoderRecord:
    """The frozen encoder a checkpoint was trained on (its weights are not in the checkpoint)."""

    name: str
    weights_file: str | None = None  # file name of the weights the user passed (DINOv2)
    random_weights: bool = False  # tests only: seeded random weights
    init_seed: int | None = None


@dataclass(frozen=True)
class HeadSettings:
    """The INP-Former head's shape (what ``INPFormer(encoder, ...)`` needs besides the encoder)."""

    num_inps: int = 6
    mlp_ratio: float = 4.0


@dataclass(frozen=True)
class TrainProgress:
    """Where the run stood when the checkpoint was saved."""

    step: int
    total_steps: int
    steps_per_epoch: int
    loss_history: tuple[Mapping[str, Any], ...] = ()
    saved_utc: str = ""


@dataclass(frozen=True)
class CheckpointMeta:
    """Everything in a checkpoint except tensors (weights, optimizer state, RNG states)."""

    encoder: EncoderRecord
    transform: ImageTransform
    head: HeadSettings
    training_data: TrainingData
    train_config: TrainConfig | None = None  # None: not written by export.train (e.g. converted)
    progress: TrainProgress | None = None
    encoder_spec: EncoderSpec | None = None

    def dataset(self, data_root: Path | None, categories: tuple[str, ...] = ()) -> tuple[Path, tuple]:
        """The data root and categories to use: the ones given, else what the model was trained on."""
        root = Path(data_root) if data_root else Path(self.training_data.data_root)
        names = tuple(categories) or self.training_data.categories
        if not names:
            raise DataError(
                "no categories given and none recorded in the checkpoint", fix="pass --category NAME"
            )
        return root, names

    def to_payload(self) -> dict[str, Any]:
        """The on-disk records (plain values: dicts, lists, strings, numbers)."""
        payload: dict[str, Any] = {
            "encoder": dataclasses.asdict(self.encoder),
            "transform": dataclasses.asdict(self.transform),
            "head": dataclasses.asdict(self.head),
            "training_data": plain(dataclasses.asdict(self.training_data)),
        }
        if self.train_config is not None:
            payload["train_config"] = config_json(self.train_config)
        if self.encoder_spec is not None:
            payload["encoder_spec"] = plain(dataclasses.asdict(self.encoder_spec))
        if self.progress is not None:
            progress = self.progress
            payload.update(
                step=progress.step,
                total_steps=progress.total_steps,
                steps_per_epoch=progress.steps_per_epoch,
                loss_history=[dict(entry) for entry in progress.loss_history],
                saved_utc=progress.saved_utc,
            )
        return payload

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any], path: Path) -> CheckpointMeta:
        """Parse the records of a checkpoint dict; every fault names the file and the key."""
        progress = None
        if "step" in payload:
            raw = {name: payload[name] for name in PROGRESS_KEYS if name in payload}
            progress = record(TrainProgress, raw, "step", path)
        train_config = None
        if payload.get("train_config") is not None:
            train_config = _parsed("train_config", path, lambda: config_from_json(payload["train_config"]))
        spec = None
        if payload.get("encoder_spec") is not None:
            spec = record(EncoderSpec, payload["encoder_spec"], "encoder_spec", path)
        return cls(
            encoder=record(EncoderRecord, payload["encoder"], "encoder", path),
            transform=record(ImageTransform, payload["transform"], "transform", path),
            head=record(HeadSettings, payload["head"], "head", path),
            training_data=record(TrainingData, payload["training_data"], "training_data", path),
            train_config=train_config,
            progress=progress,
            encoder_spec=spec,
        )


PROGRESS_KEYS = tuple(f.name for f in fields(TrainProgress))
META_KEYS = ("encoder", "transform", "head", "training_data", "train_config", "encoder_spec", *PROGRESS_KEYS)


def record(kind: type, raw: Any, key: str, path: Path) -> Any:
    """A frozen ``kind`` from the mapping stored under ``key``: contract 1's strict record reader, with
    every fault (unknown, missing or mistyped field, refused value) a ``CheckpointError`` naming the file."""
    return parse_record(kind, raw, key, f"checkpoint {path}", CheckpointError, RETRAIN_FIX)


def _parsed(key: str, path: Path, build: Callable[[], Any]) -> Any:
    try:
        return build()
    except TypeError as exc:  # a required field is missing
        raise CheckpointError(f"checkpoint {path}: {key!r} is incomplete ({exc})", fix=RETRAIN_FIX) from None
    except InpEdgeError as exc:  # a value the type refuses (e.g. an invalid train_config)
        raise CheckpointError(
            f"checkpoint {path}: {key!r} is invalid: {exc.message}", fix=RETRAIN_FIX
        ) from None


def plain(value: Any) -> Any:
    """Tuples → lists, recursively (what torch's safe loader and JSON both read back)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value
