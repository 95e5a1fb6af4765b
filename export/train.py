"""Training loop of the INP-Former head on a frozen encoder (INP_FORMER.md §7).

The encoder is frozen and the recipes have no random augmentation (few-shot uses 22 *fixed*
views), so the encoder's features are computed once and cached in memory: every epoch then costs
only the head. Data order is a seeded permutation per epoch, so a run resumed from any step of a
checkpoint follows the same batches and the same per-iteration schedule as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from edge.atomic import write_text_atomic
from edge.errors import ConfigError
from edge.model.contract import TrainingData
from export import checkpoint as ckpt
from export.checkpoint import (
    Checkpoint,
    CheckpointError,
    CheckpointMeta,
    EncoderRecord,
    HeadSettings,
    TrainProgress,
)
from export.data import ImageTransform
from export.features import FeatureCache, LiveEncoding, TrainingSource, load_training_images
from export.model.base import FrozenEncoder
from export.model.inp_former import INPFormer
from export.model.loss import inp_former_loss
from export.optim import StableAdamW, set_lr, warm_cosine_lr
from export.stop import StopRequest

# Re-exported: the public training API is export.train.
from export.train_config import (  # noqa: F401
    RUN_FIELDS,
    TrainConfig,
    TrainResult,
    batch_at,
    check_encoder_name,
    config_json,
    config_mismatches,
    config_problems,
    effective_warmup,
    epoch_order,
    resolve_transform,
    steps_per_epoch,
)

CHECKPOINT_NAME = "checkpoint.pt"
LOG_NAME = "train_log.json"


class _Run:
    """One training run's mutable state: model, optimizer, step, loss history."""

    def __init__(self, config: TrainConfig, encoder: FrozenEncoder, source: TrainingSource) -> None:
        self.config = config
        self.source = source
        torch.manual_seed(config.seed)
        random.seed(config.seed)
        self.model = INPFormer(encoder, num_inps=config.num_inps, mlp_ratio=config.mlp_ratio)
        self.params = self.model.trainable_parameters()
        self.optimizer = StableAdamW(self.params, lr=config.lr, weight_decay=config.weight_decay)
        self.steps_per_epoch = steps_per_epoch(len(source), config.batch_size)
        self.total_steps = config.epochs * self.steps_per_epoch
        self.warmup_steps = effective_warmup(config.warmup_steps, self.total_steps)
        self.step = 0
        self.history: list[dict[str, Any]] = []

    def lr_at(self, step: int) -> float:
        c = self.config
        return warm_cosine_lr(
            step,
            base_lr=c.lr,
            final_lr=c.final_lr,
            warmup_steps=self.warmup_steps,
            total_steps=self.total_steps,
        )

    def train_step(self, indices: list[int]) -> tuple[float, float, float, float]:
        lr = self.lr_at(self.step)
        set_lr(self.optimizer, lr)
        terms = inp_former_loss(
            self.source.reconstruct(self.model, indices),
            coherence_weight=self.config.coherence_weight,
            gamma=self.config.gamma,
        )
        self.optimizer.zero_grad(set_to_none=True)
        terms.total.backward()
        torch.nn.utils.clip_grad_norm_(self.params, self.config.grad_clip)
        self.optimizer.step()
        self.step += 1
        return terms.total.item(), terms.soft_mining.item(), terms.coherence.item(), lr

    def restore(self, checkpoint: Checkpoint) -> None:
        progress = checkpoint.meta.progress
        assert progress is not None and checkpoint.optimizer_state is not None  # checked by _check_resume
        self.model.load_trainable_state_dict(dict(checkpoint.trainable_state))
        self.optimizer.load_state_dict(dict(checkpoint.optimizer_state))
        self.step = progress.step
        self.history = [dict(entry) for entry in progress.loss_history]
        rng = checkpoint.rng or {}
        if "torch" in rng:
            torch.set_rng_state(rng["torch"])
        if "python" in rng:
            random.setstate(rng["python"])


def train(config: TrainConfig, *, progress: bool = True, encoder: FrozenEncoder | None = None) -> TrainResult:
    """Train (or resume) and write ``checkpoint.pt`` and ``train_log.json`` into ``config.out_dir``.

    ``encoder`` replaces the one ``config.encoder`` names (custom or test encoders); pass the same
    encoder to ``export.checkpoint.load_model``.
    """
    if encoder is None:
        check_encoder_name(config)  # cheap, before any image is read
    started = time.monotonic()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.num_threads or len(os.sched_getaffinity(0)))
    try:
        return _train(config, progress=progress, encoder=encoder, started=started)
    finally:
        torch.set_num_threads(previous_threads)


def _train(
    config: TrainConfig, *, progress: bool, encoder: FrozenEncoder | None, started: float
) -> TrainResult:
    record = _encoder_record(config, encoder)
    # Cheap checks first: a corrupt or foreign --resume checkpoint is refused before any encoding.
    resume = ckpt.read_checkpoint(config.resume_from) if config.resume_from is not None else None
    if encoder is None:
        encoder = ckpt.build_encoder_from_record(
            record, weights=config.encoder_weights, input_size_px=config.crop_px
        )
    transform = resolve_transform(encoder.spec, config.resize_px, config.crop_px)
    images, summary, notes = load_training_images(config, transform)
    if resume is not None:
        _check_resume(resume, config, summary, transform)
    source = _make_source(config, encoder, images, progress=progress)
    run = _Run(config, encoder, source)
    notes = list(notes)
    if len(source) < config.batch_size:
        notes.append(
            f"{len(source)} training items < batch size {config.batch_size}: each step uses the whole set"
        )
    if run.warmup_steps != config.warmup_steps:
        notes.append(f"warm-up shortened to {run.warmup_steps} steps: the run has only {run.total_steps}")
    if resume is not None:
        run.restore(resume)
    meta = CheckpointMeta(
        encoder=record,
        transform=transform,
        head=HeadSettings(num_inps=config.num_inps, mlp_ratio=config.mlp_ratio),
        training_data=summary,
        train_config=config,
        encoder_spec=encoder.spec,
    )
    reason = _loop(run, meta, progress=progress, started=started)
    path = _save(run, meta)
    seconds = time.monotonic() - started
    log_path = _write_log(run, meta, reason=reason, seconds=seconds, notes=notes)
    final = run.history[-1]["loss"] if run.history else float("nan")
    return TrainResult(
        checkpoint_path=path,
        log_path=log_path,
        steps=run.step,
        total_steps=run.total_steps,
        epochs_done=run.step / run.steps_per_epoch,
        final_loss=final,
        seconds=seconds,
        stop_reason=reason,
        notes=tuple(notes),
    )


def _encoder_record(config: TrainConfig, encoder: FrozenEncoder | None) -> EncoderRecord:
    if encoder is not None:
        return EncoderRecord(name=encoder.spec.name)
    weights = config.encoder_weights
    return EncoderRecord(
        name=config.encoder,
        weights_file=Path(weights).name if weights is not None else None,
        random_weights=config.random_encoder_weights,
        init_seed=config.seed,
    )


def _make_source(
    config: TrainConfig, encoder: FrozenEncoder, images: Any, *, progress: bool
) -> TrainingSource:
    if not config.cache_features:
        return LiveEncoding(images)
    dtype = torch.float16 if config.cache_dtype == "float16" else torch.float32
    return FeatureCache.build(
        encoder, images, batch_size=config.encode_batch_size, dtype=dtype, progress=progress
    )


def _check_resume(
    resume: Checkpoint, config: TrainConfig, summary: TrainingData, transform: ImageTransform
) -> None:
    """A resumed run must agree with its checkpoint on settings, input transform and images."""
    meta = resume.meta
    if meta.train_config is None or meta.progress is None or resume.optimizer_state is None:
        raise CheckpointError(
            f"{resume.path} has no training state (train_config, step, optimizer state) to resume from",
            fix="start a new run without --resume",
        )
    problems = config_mismatches(meta.train_config, config)
    if meta.transform != transform:
        problems.append(f"input transform {meta.transform} differs from {transform}")
    if meta.training_data.fingerprint != summary.fingerprint:
        problems.append("training images differ from the checkpoint's (fingerprint of the file list)")
    if problems:
        raise ConfigError(
            f"cannot resume from {resume.path}: " + "; ".join(problems),
            fix="use the settings and images the checkpoint was trained with (its train_config in "
            "train_log.json), or start a new run without --resume",
        )


def _loop(run: _Run, meta: CheckpointMeta, *, progress: bool, started: float) -> str:
    bar = tqdm(total=run.total_steps, initial=run.step, disable=not progress, desc="train", unit="step")
    with StopRequest() as stop:
        try:
            return _epochs(run, meta, bar, stop, started)
        finally:
            bar.close()


def _epochs(run: _Run, meta: CheckpointMeta, bar: tqdm, stop: StopRequest, started: float) -> str:
    config = run.config
    while run.step < run.total_steps:
        epoch, first_batch = divmod(run.step, run.steps_per_epoch)
        order = epoch_order(len(run.source), seed=config.seed, epoch=epoch)
        sums = [0.0, 0.0, 0.0]
        for batch in range(first_batch, run.steps_per_epoch):
            loss, soft, coherence, lr = run.train_step(batch_at(order, batch, config.batch_size))
            sums = [sums[0] + loss, sums[1] + soft, sums[2] + coherence]
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
            if config.max_minutes is not None and time.monotonic() - started > 60 * config.max_minutes:
                _record(run, epoch, sums, batch + 1 - first_batch, lr, started)
                return "max_minutes"
            if stop.requested:
                _record(run, epoch, sums, batch + 1 - first_batch, lr, started)
                return "interrupted"
        _record(run, epoch, sums, run.steps_per_epoch - first_batch, lr, started)
        done = epoch + 1
        if config.stop_after_epochs is not None and done >= config.stop_after_epochs:
            return "stop_after_epochs"
        if (
            config.checkpoint_every_epochs > 0
            and done % config.checkpoint_every_epochs == 0
            and run.step < run.total_steps
        ):
            _save(run, meta)
    return "completed"


def _record(run: _Run, epoch: int, sums: list[float], count: int, lr: float, started: float) -> None:
    run.history.append(
        {
            "epoch": epoch + 1,
            "step": run.step,
            "loss": sums[0] / count,
            "soft_mining": sums[1] / count,
            "coherence": sums[2] / count,
            "lr": lr,
            "partial": run.step % run.steps_per_epoch != 0,
            "seconds": round(time.monotonic() - started, 3),
        }
    )


def _save(run: _Run, meta: CheckpointMeta) -> Path:
    progress = TrainProgress(
        step=run.step,
        total_steps=run.total_steps,
        steps_per_epoch=run.steps_per_epoch,
        loss_history=tuple(run.history),
        saved_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    return ckpt.save_checkpoint(
        Path(run.config.out_dir) / CHECKPOINT_NAME,
        dataclasses.replace(meta, progress=progress),
        run.model.trainable_state_dict(),
        optimizer_state=run.optimizer.state_dict(),
        rng={"torch": torch.get_rng_state(), "python": random.getstate()},
    )


def _write_log(run: _Run, meta: CheckpointMeta, *, reason: str, seconds: float, notes: list[str]) -> Path:
    records = meta.to_payload()
    log = {
        "train_config": config_json(run.config),
        **{key: records[key] for key in ("encoder", "transform", "training_data")},
        "steps": run.step,
        "total_steps": run.total_steps,
        "steps_per_epoch": run.steps_per_epoch,
        "warmup_steps": run.warmup_steps,
        "stop_reason": reason,
        "seconds": round(seconds, 3),
        "torch_threads": torch.get_num_threads(),
        "source": run.source.describe(),
        "notes": notes,
        "loss_history": run.history,
        "checkpoint": str(Path(run.config.out_dir) / CHECKPOINT_NAME),
    }
    path = Path(run.config.out_dir) / LOG_NAME
    return write_text_atomic(path, json.dumps(log, indent=2) + "\n")
