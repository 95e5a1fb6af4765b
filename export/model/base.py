"""Values and the encoder interface shared by every part of the model side.

An encoder is frozen. It takes RGB images scaled to [0, 1] (B×3×H×W float32), normalises them
itself, and returns its tapped layers as token tensors of one shape (B×N×C each). The method
only ever needs two things from the taps: their mean (the fused query features F_Q) and the
mean of each group (the reconstruction targets), so that is what gets cached for training.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class EncoderSpec:
    """What the INP-Former head needs to know about a frozen encoder."""

    name: str
    embed_dim: int  # C of every tapped token tensor
    num_heads: int  # attention heads of the INP blocks built on this encoder
    num_taps: int  # how many layers are tapped (8 in the paper)
    groups: tuple[tuple[int, ...], ...]  # indices into the taps, shallow group first
    input_size_px: int  # default square input (centre crop), a multiple of stride_px
    resize_px: int  # default resize before the centre crop (448 → 392 in the paper)
    stride_px: int  # input pixels per token along each axis
    mean_rgb: tuple[float, float, float]  # normalisation applied by the encoder to [0, 1] RGB
    std_rgb: tuple[float, float, float]


@dataclass(frozen=True)
class EncodedFeatures:
    """The frozen encoder's output as the method uses it (and as training caches it)."""

    fused: Tensor  # B×N×C, mean of all taps (F_Q)
    groups: tuple[Tensor, ...]  # one B×N×C tensor per group, mean of the group's taps
    grid_hw: tuple[int, int]  # token grid, N = h·w


@dataclass(frozen=True)
class Reconstruction:
    """One forward pass of the INP-Former head."""

    encoder_groups: tuple[Tensor, ...]  # B×N×C targets (no gradient)
    decoder_groups: tuple[Tensor, ...]  # B×N×C reconstructions, paired with encoder_groups
    inps: Tensor  # B×M×C intrinsic normal prototypes
    fused: Tensor  # B×N×C F_Q, for the coherence loss / zero-shot map
    grid_hw: tuple[int, int]


class FrozenEncoder(nn.Module):
    """Base class: subclasses set ``spec`` and implement ``taps``."""

    spec: EncoderSpec

    def taps(self, images: Tensor) -> list[Tensor]:
        """Return ``spec.num_taps`` token tensors, each B×N×C, for [0, 1] RGB images."""
        raise NotImplementedError

    def grid_hw(self, height_px: int, width_px: int) -> tuple[int, int]:
        return height_px // self.spec.stride_px, width_px // self.spec.stride_px

    def forward(self, images: Tensor) -> EncodedFeatures:
        with torch.no_grad():
            taps = self.taps(images)
        return fuse_taps(taps, self.spec.groups, self.grid_hw(images.shape[-2], images.shape[-1]))

    def train(self, mode: bool = True) -> FrozenEncoder:
        # Frozen means frozen: batch-norm statistics and dropout never switch to training mode.
        return super().train(False)


def mean_of(tensors: list[Tensor] | tuple[Tensor, ...]) -> Tensor:
    """Element-wise mean as a chain of adds (exports to Add/Mul, not Concat + ReduceMean)."""
    total = tensors[0]
    for tensor in tensors[1:]:
        total = total + tensor
    return total * (1.0 / len(tensors))


def unit_vectors(x: Tensor, *, dim: int = -1, eps: float = 1e-12) -> Tensor:
    """``x / max(‖x‖, eps)`` along ``dim`` (same as F.normalize), written so ONNX needs no Expand."""
    return x * torch.rsqrt((x * x).sum(dim=dim, keepdim=True).clamp_min(eps * eps))


def fuse_taps(
    taps: list[Tensor], groups: tuple[tuple[int, ...], ...], grid_hw: tuple[int, int]
) -> EncodedFeatures:
    """Mean of all taps (F_Q) and mean of each group (INP_FORMER.md §2)."""
    fused = mean_of(taps)
    grouped = tuple(mean_of([taps[i] for i in group]) for group in groups)
    return EncodedFeatures(fused=fused, groups=grouped, grid_hw=grid_hw)
