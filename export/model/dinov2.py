"""DINOv2 ViT with 4 register tokens as a frozen INP-Former encoder (INP_FORMER.md §1).

Module names follow Meta's official ``dinov2_vit{s,b,l}14_reg4_pretrain.pth`` files, so they load
strictly with no renaming. Patch 14, pretrained at 518 px (37×37 position grid + CLS), LayerScale,
LayerNorm eps 1e-6, MLP ratio 4 with GELU. Registers carry no position embedding. Blocks after the
last tapped block are never run and the final norm is never applied; CLS and registers are dropped
from every tap.

The position embedding is resized bicubically with DINOv2's 0.1 offset ONCE, for the fixed input
grid, into a non-persistent buffer (refreshed whenever weights are loaded), so an exported graph
needs no dynamic bicubic resize.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from export.model.base import EncoderSpec, FrozenEncoder

PATCH_SIZE_PX = 14
PRETRAIN_SIZE_PX = 518  # 37×37 position grid
NUM_REGISTER_TOKENS = 4
LAYER_NORM_EPS = 1e-6
MLP_RATIO = 4
INTERPOLATE_OFFSET = 0.1


@dataclass(frozen=True)
class DinoV2Variant:
    spec: EncoderSpec
    depth: int  # blocks in the checkpoint (all are loaded, only up to the last tap run)
    tap_blocks: tuple[int, ...]  # 0-based block outputs that become taps


class Attention(nn.Module):
    def __init__(self, *, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        batch, length, dim = x.shape
        qkv = self.qkv(x).reshape(batch, length, 3, self.num_heads, dim // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        weights = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        return self.proj((weights @ v).transpose(1, 2).reshape(batch, length, dim))


class Mlp(nn.Module):
    def __init__(self, *, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class LayerScale(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), 1e-5))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class Block(nn.Module):
    def __init__(self, *, dim: int, num_heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.attn = Attention(dim=dim, num_heads=num_heads)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.mlp = Mlp(dim=dim, hidden_dim=dim * MLP_RATIO)
        self.ls2 = LayerScale(dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=PATCH_SIZE_PX, stride=PATCH_SIZE_PX)

    def forward(self, images: Tensor) -> Tensor:
        return self.proj(images).flatten(2).transpose(1, 2)  # B×N×C


def resize_pos_embed(pos_embed: Tensor, grid_hw: tuple[int, int]) -> Tensor:
    """1×(1+M²)×C pretrained embedding → 1×(1+h·w)×C for ``grid_hw``, as DINOv2 does it.

    Bicubic, no antialias, ``scale_factor = (side + 0.1) / M`` (the 0.1 offset avoids an
    off-by-one floor); the pretrained grid itself is returned unchanged.
    """
    cls_pos, patch_pos = pos_embed[:, :1], pos_embed[:, 1:]
    side = round(patch_pos.shape[1] ** 0.5)
    height, width = grid_hw
    if (height, width) == (side, side):
        return pos_embed
    dim = patch_pos.shape[-1]
    grid = patch_pos.float().reshape(1, side, side, dim).permute(0, 3, 1, 2)
    scale = ((height + INTERPOLATE_OFFSET) / side, (width + INTERPOLATE_OFFSET) / side)
    resized = F.interpolate(grid, scale_factor=scale, mode="bicubic", antialias=False)
    if tuple(resized.shape[-2:]) != (height, width):
        raise RuntimeError(f"position embedding resized to {tuple(resized.shape[-2:])}, expected {grid_hw}")
    resized = resized.permute(0, 2, 3, 1).reshape(1, height * width, dim).to(pos_embed.dtype)
    return torch.cat([cls_pos, resized], dim=1)


class DinoV2Encoder(FrozenEncoder):
    """Frozen DINOv2-reg ViT; taps are the patch tokens of ``variant.tap_blocks`` (B×N×C)."""

    def __init__(self, variant: DinoV2Variant) -> None:
        super().__init__()
        self.spec = variant.spec
        self.tap_blocks = variant.tap_blocks
        dim = variant.spec.embed_dim
        num_positions = (PRETRAIN_SIZE_PX // PATCH_SIZE_PX) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + num_positions, dim))
        self.register_tokens = nn.Parameter(torch.zeros(1, NUM_REGISTER_TOKENS, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, dim))  # unused; in the checkpoint
        self.patch_embed = PatchEmbed(dim)
        self.blocks = nn.ModuleList(
            Block(dim=dim, num_heads=variant.spec.num_heads) for _ in range(variant.depth)
        )
        self.norm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)  # unused (INP-Former never applies it)
        self.register_buffer("mean_rgb", torch.tensor(self.spec.mean_rgb).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std_rgb", torch.tensor(self.spec.std_rgb).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("grid_pos_embed", torch.zeros(0), persistent=False)
        self.register_load_state_dict_post_hook(lambda module, _keys: module.refresh_pos_embed())
        self.refresh_pos_embed()
        self.requires_grad_(False)
        self.eval()

    @property
    def input_grid_hw(self) -> tuple[int, int]:
        side = self.spec.input_size_px // PATCH_SIZE_PX
        return side, side

    @torch.no_grad()
    def refresh_pos_embed(self) -> None:
        """Recompute the position embedding for the fixed input grid from ``pos_embed``."""
        if self.pos_embed.is_meta:
            return
        self.grid_pos_embed = resize_pos_embed(self.pos_embed, self.input_grid_hw)

    def prepare_tokens(self, images: Tensor) -> Tensor:
        """[CLS, registers, patches]; position embedding added before the registers go in."""
        grid_hw = self.grid_hw(images.shape[-2], images.shape[-1])
        if grid_hw != self.input_grid_hw:
            raise ValueError(
                f"DINOv2 encoder was built for {self.spec.input_size_px} px input (grid "
                f"{self.input_grid_hw}), got {images.shape[-2]}×{images.shape[-1]} px; resize the "
                "images or build the encoder with input_size_px set to their size"
            )
        x = self.patch_embed((images - self.mean_rgb) / self.std_rgb)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.grid_pos_embed
        registers = self.register_tokens.expand(x.shape[0], -1, -1)
        return torch.cat([x[:, :1], registers, x[:, 1:]], dim=1)

    def taps(self, images: Tensor) -> list[Tensor]:
        x = self.prepare_tokens(images)
        first_patch = 1 + NUM_REGISTER_TOKENS
        wanted = set(self.tap_blocks)
        taps = []
        for index, block in enumerate(self.blocks[: max(self.tap_blocks) + 1]):
            x = block(x)
            if index in wanted:
                taps.append(x[:, first_patch:, :])
        return taps
