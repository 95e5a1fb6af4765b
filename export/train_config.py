"""Training settings (TrainConfig) and the pure rules of a run: validation, input transform,
epoch order, batches, warm-up length, and what a resumed run must agree on."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from edge.errors import ConfigError
from export.data import ImageTransform
from export.model.base import EncoderSpec
from export.model.encoders import ENCODER_NAMES

# Fields that define the run; a resumed run must agree on them (the rest may change).
RUN_FIELDS = (
    "categories", "encoder", "random_encoder_weights", "layout", "mode", "shots", "epochs", "batch_size",
    "lr", "final_lr", "warmup_steps", "weight_decay", "grad_clip", "seed", "cache_dtype", "num_inps",
    "mlp_ratio", "coherence_weight", "gamma",
)  # fmt: skip


@dataclass(frozen=True)
class TrainConfig:
    data_root: Path  # MVTec-layout root, or a plain folder of good images (layout "folder")
    categories: tuple[str, ...] = ()  # several = one multi-class model; () = every category found
    encoder: str = "efficientnet_lite0"  # ENCODER_NAMES; train(encoder=...) may run another in its place
    encoder_weights: Path | None = None
    random_encoder_weights: bool = False  # smoke tests only: an encoder with seeded random weights
    layout: Literal["mvtec", "folder"] = "mvtec"
    mode: Literal["full", "few-shot"] = "full"
    shots: int = 4  # few-shot: images per category (1, 2 or 4 in the paper), each expanded to 22 views
    epochs: int = 200
    batch_size: int = 16
    lr: float = 1e-3
    final_lr: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 1e-4
    grad_clip: float = 0.1
    seed: int = 1
    cache_features: bool = True
    cache_dtype: Literal["float32", "float16"] = "float32"
    num_inps: int = 6
    mlp_ratio: float = 4.0
    coherence_weight: float = 0.2
    gamma: float = 3.0
    out_dir: Path = Path("runs/train")
    resize_px: int | None = None  # None = the encoder's default
    crop_px: int | None = None
    max_minutes: float | None = None  # stop (and save) once this much wall time has passed
    stop_after_epochs: int | None = None  # stop (and save) after this epoch; the schedule is unchanged
    checkpoint_every_epochs: int = 10
    resume_from: Path | None = None
    num_threads: int | None = None  # None = every CPU this process may use
    encode_batch_size: int = 16

    def __post_init__(self) -> None:
        problems = config_problems(self)
        if problems:
            raise ConfigError(
                "invalid training config: " + "; ".join(problems),
                fix="change the options named (train flags or --config keys)",
            )


@dataclass(frozen=True)
class TrainResult:
    checkpoint_path: Path
    log_path: Path
    steps: int
    total_steps: int
    epochs_done: float
    final_loss: float
    seconds: float
    stop_reason: str  # "completed" | "max_minutes" | "stop_after_epochs"
    notes: tuple[str, ...]


def check_encoder_name(config: TrainConfig) -> None:
    """The encoder the config names must be one ``build_encoder`` knows (unless ``train`` is given one)."""
    if config.encoder not in ENCODER_NAMES:
        raise ConfigError(
            f"encoder is {config.encoder!r}, allowed: {', '.join(ENCODER_NAMES)}",
            fix="pick one of those names, or pass your own encoder to export.train.train(encoder=...)",
        )


def config_problems(config: TrainConfig) -> list[str]:
    """Every invalid setting, each with its allowed values."""
    choices = {
        "layout": ("mvtec", "folder"),
        "mode": ("full", "few-shot"),
        "cache_dtype": ("float32", "float16"),
    }
    problems = [
        f"{key} is {getattr(config, key)!r}, allowed: {', '.join(allowed)}"
        for key, allowed in choices.items()
        if getattr(config, key) not in allowed
    ]
    for key in ("epochs", "batch_size", "shots", "num_inps", "encode_batch_size"):
        if int(getattr(config, key)) < 1:
            problems.append(f"{key} must be at least 1, got {getattr(config, key)}")
    if not 0 <= config.final_lr <= config.lr or config.warmup_steps < 0:
        problems.append(
            f"need 0 <= final_lr <= lr and warmup_steps >= 0, got final_lr {config.final_lr}, "
            f"lr {config.lr}, warmup_steps {config.warmup_steps}"
        )
    return problems


def resolve_transform(spec: EncoderSpec, resize_px: int | None, crop_px: int | None) -> ImageTransform:
    """Encoder defaults, or the given crop with the encoder's resize/crop ratio kept."""
    crop = crop_px or spec.input_size_px
    if resize_px is None:
        resize_px = (
            spec.resize_px
            if crop == spec.input_size_px
            else round(crop * spec.resize_px / spec.input_size_px)
        )
    return ImageTransform(resize_px=resize_px, crop_px=crop)


def steps_per_epoch(num_items: int, batch_size: int) -> int:
    """drop_last batches; a set smaller than one batch is used whole, as one batch."""
    return max(1, num_items // batch_size)


def epoch_order(num_items: int, *, seed: int, epoch: int) -> list[int]:
    """The seeded shuffle of one epoch (independent of every other epoch, so resumable)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(num_items, generator=generator).tolist()


def batch_at(order: list[int], batch: int, batch_size: int) -> list[int]:
    if len(order) < batch_size:
        return order
    return order[batch * batch_size : (batch + 1) * batch_size]


def effective_warmup(warmup_steps: int, total_steps: int) -> int:
    """The warm-up must end before the last step; a too-short run warms up for half of it."""
    return warmup_steps if warmup_steps < total_steps else total_steps // 2


def config_mismatches(saved: TrainConfig, config: TrainConfig) -> list[str]:
    """The run-defining settings (``RUN_FIELDS``) on which a resumed run differs from its checkpoint."""
    before, now = config_json(saved), config_json(config)
    return [
        f"{key}: checkpoint {before[key]!r}, now {now[key]!r}"
        for key in RUN_FIELDS
        if before[key] != now[key]
    ]


def config_json(config: TrainConfig) -> dict[str, Any]:
    out = dataclasses.asdict(config)
    for key, value in out.items():
        if isinstance(value, Path):
            out[key] = str(value)
        elif isinstance(value, tuple):
            out[key] = list(value)
    return out


TRAIN_CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))
PATH_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig) if "Path" in str(f.type))


def config_from_json(values: Mapping[str, Any]) -> TrainConfig:
    """The inverse of ``config_json`` (fields left out take their defaults; unknown keys are refused)."""
    allowed = set(TRAIN_CONFIG_FIELDS)
    unknown = sorted(str(key) for key in set(values) - allowed)
    if unknown:
        raise ConfigError(
            f"unknown train option(s) {unknown}; allowed: {', '.join(sorted(allowed))}",
            fix="remove or rename them",
        )
    out = dict(values)
    for key in PATH_FIELDS:
        if out.get(key) is not None:
            out[key] = Path(out[key])
    categories = out.get("categories", ())
    out["categories"] = (categories,) if isinstance(categories, str) else tuple(categories)
    return TrainConfig(**out)
