"""A tiny frozen encoder, a folder of drawn good parts and a short training config, for the training
and checkpoint tests (tests/test_train.py, tests/test_checkpoint_files.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from export.model.base import EncoderSpec, FrozenEncoder
from export.train import TrainConfig


class TinyEncoder(FrozenEncoder):
    """A fixed random conv encoder: 4×4 patches, 4 residual taps of 16 channels."""

    def __init__(self) -> None:
        super().__init__()
        self.spec = EncoderSpec(
            name="tiny_test",
            embed_dim=16,
            num_heads=2,
            num_taps=4,
            groups=((0, 1), (2, 3)),
            input_size_px=32,
            resize_px=36,
            stride_px=4,
            mean_rgb=(0.5, 0.5, 0.5),
            std_rgb=(0.25, 0.25, 0.25),
        )
        self.patch_embed = nn.Conv2d(3, 16, kernel_size=4, stride=4)
        self.layers = nn.ModuleList(nn.Conv2d(16, 16, 3, padding=1) for _ in range(4))
        generator = torch.Generator().manual_seed(99)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=generator) * 0.15)
        self.requires_grad_(False)

    def taps(self, images: Tensor) -> list[Tensor]:
        x = self.patch_embed((images - 0.5) / 0.25)
        outputs = []
        for layer in self.layers:
            x = x + torch.tanh(layer(x))
            outputs.append(x.flatten(2).transpose(1, 2))
        return outputs


def write_parts(tmp_path: Path) -> Path:
    """12 textured 40×40 'good parts' written as PNG in ``tmp_path / "parts"``."""
    folder = tmp_path / "parts"
    folder.mkdir()
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:40, 0:40] / 40.0
    for i in range(12):
        phase = rng.uniform(0, 2 * np.pi, 3)
        channels = [np.sin(2 * np.pi * (3 * xx + 2 * yy) + p) for p in phase]
        image = (np.stack(channels, axis=2) * 90 + 128 + rng.normal(0, 8, (40, 40, 3))).clip(0, 255)
        cv2.imwrite(str(folder / f"part{i:02d}.png"), image.astype(np.uint8))
    return folder


def tiny_config(parts: Path, out_dir: Path, **changes: object) -> TrainConfig:
    base = TrainConfig(
        data_root=parts,
        layout="folder",
        encoder="tiny_test",  # TinyEncoder, passed to train() in its place
        epochs=4,
        batch_size=4,
        lr=5e-3,
        final_lr=5e-4,
        warmup_steps=2,
        num_threads=1,
        checkpoint_every_epochs=0,
        out_dir=out_dir,
    )
    return dataclasses.replace(base, **changes)
