"""Anomaly maps and image scores from token distances (INP_FORMER.md §8).

Everything here is plain torch on static shapes with no data-dependent Python control flow, so
the same functions run in evaluation and trace into the exported ONNX graph (opset 17):

1. per group, 1 − cos(encoder token, decoder token) over channels → B×G×h×w;
2. bilinear upsampling with ``align_corners=True`` to the input size, then the mean over groups;
3. bilinear resize with ``align_corners=False`` to ``map_size_px`` square;
4. a normalised 5×5 Gaussian (σ 4) as a depthwise convolution with zero padding;
5. image score = mean of the top ``int(S·S·top_ratio)`` map values (the max when that is 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from export.model.base import unit_vectors


@dataclass(frozen=True)
class MapSettings:
    """Post-processing of the paper's evaluation (``resize_mask=256``, Gaussian 5/σ4, top 1 %)."""

    map_size_px: int = 256
    gaussian_ksize: int = 5
    gaussian_sigma: float = 4.0
    top_ratio: float = 0.01

    def __post_init__(self) -> None:
        if self.map_size_px < 1:
            raise ValueError(f"MapSettings.map_size_px must be >= 1, got {self.map_size_px}")
        if self.gaussian_ksize < 1 or self.gaussian_ksize % 2 == 0:
            raise ValueError(
                f"MapSettings.gaussian_ksize must be a positive odd number (the padding is ksize // 2), "
                f"got {self.gaussian_ksize}"
            )
        if self.gaussian_sigma <= 0:
            raise ValueError(f"MapSettings.gaussian_sigma must be > 0, got {self.gaussian_sigma}")
        if not 0.0 <= self.top_ratio <= 1.0:
            raise ValueError(f"MapSettings.top_ratio must be in [0, 1], got {self.top_ratio}")


def gaussian_kernel(ksize: int, sigma: float) -> Tensor:
    """A ksize×ksize Gaussian centred on the middle pixel, normalised to sum 1 (float32)."""
    offsets = torch.arange(ksize, dtype=torch.float64) - (ksize - 1) / 2.0
    profile = torch.exp(-(offsets**2) / (2.0 * sigma**2))
    kernel = torch.outer(profile, profile)
    return (kernel / kernel.sum()).to(torch.float32)


def group_distance_maps(
    encoder_groups: tuple[Tensor, ...] | list[Tensor],
    decoder_groups: tuple[Tensor, ...] | list[Tensor],
    grid_hw: tuple[int, int],
) -> Tensor:
    """B×G×h×w maps of 1 − cos over channels between paired B×N×C token tensors."""
    if len(encoder_groups) != len(decoder_groups) or len(encoder_groups) == 0:
        raise ValueError(
            f"group_distance_maps needs the same non-zero number of encoder and decoder groups, "
            f"got {len(encoder_groups)} and {len(decoder_groups)}"
        )
    distances = [
        1.0 - (unit_vectors(enc) * unit_vectors(dec)).sum(dim=-1)
        for enc, dec in zip(encoder_groups, decoder_groups, strict=True)
    ]
    return _tokens_to_grid(torch.stack(distances, dim=1), grid_hw)


def anomaly_map(
    encoder_groups: tuple[Tensor, ...] | list[Tensor],
    decoder_groups: tuple[Tensor, ...] | list[Tensor],
    grid_hw: tuple[int, int],
    input_hw: tuple[int, int],
    settings: MapSettings = MapSettings(),
) -> Tensor:
    """B×S×S smoothed anomaly map (S = ``settings.map_size_px``) from the reconstruction residual."""
    return _maps_to_image(group_distance_maps(encoder_groups, decoder_groups, grid_hw), input_hw, settings)


def token_map(
    distances: Tensor,
    grid_hw: tuple[int, int],
    input_hw: tuple[int, int],
    settings: MapSettings = MapSettings(),
) -> Tensor:
    """B×S×S map from one B×N token distance (zero-shot coherence distance, kNN distance)."""
    if distances.dim() != 2:
        raise ValueError(f"token_map expects B×N distances, got shape {tuple(distances.shape)}")
    return _maps_to_image(_tokens_to_grid(distances.unsqueeze(1), grid_hw), input_hw, settings)


def image_score(maps: Tensor, top_ratio: float = 0.01) -> Tensor:
    """B scores: mean of the top ``int(S·S·top_ratio)`` values of each map (the max when that is 0)."""
    flat = maps.flatten(start_dim=1)
    k = int(maps.shape[1:].numel() * top_ratio)  # static under tracing: shapes are fixed
    if k == 0:
        return flat.amax(dim=1)
    return torch.topk(flat, k, dim=1, largest=True, sorted=False).values.mean(dim=1)


def _tokens_to_grid(tokens: Tensor, grid_hw: tuple[int, int]) -> Tensor:
    """B×G×N → B×G×h×w (row-major tokens, as the encoders emit them)."""
    height, width = grid_hw
    if not torch.jit.is_tracing() and tokens.shape[-1] != height * width:
        raise ValueError(
            f"{tokens.shape[-1]} tokens do not fill a {height}×{width} grid; pass the grid_hw of the "
            f"encoder that produced them (EncodedFeatures.grid_hw)"
        )
    return tokens.unflatten(-1, (height, width))


def _maps_to_image(maps: Tensor, input_hw: tuple[int, int], settings: MapSettings) -> Tensor:
    """B×G×h×w → B×S×S: group mean, align-corners upsampling, half-pixel resize, Gaussian."""
    return smooth_maps(maps.mean(dim=1, keepdim=True), input_hw, settings).squeeze(1)


def smooth_maps(grids: Tensor, input_hw: tuple[int, int], settings: MapSettings = MapSettings()) -> Tensor:
    """B×K×h×w token-grid maps → B×K×S×S, each channel on its own (INP_FORMER.md §8 steps 2–5).

    Align-corners bilinear upsampling to the input size, half-pixel resize to S (skipped when the
    input already is S×S: it would be the identity), 5×5 Gaussian with zero padding. Several maps
    go through one Resize and one depthwise convolution, which is how the export graph makes the
    anomaly map and the zero-shot map together.
    """
    size = settings.map_size_px
    # (Averaging groups before this upsampling is exact: bilinear resizing is linear.)
    resized = F.interpolate(grids, size=tuple(input_hw), mode="bilinear", align_corners=True)
    if tuple(input_hw) != (size, size):
        resized = F.interpolate(resized, size=(size, size), mode="bilinear", align_corners=False)
    channels = grids.shape[1]
    kernel = gaussian_kernel(settings.gaussian_ksize, settings.gaussian_sigma).to(resized)
    weight = kernel[None, None].expand(channels, 1, -1, -1)
    return F.conv2d(resized, weight, padding=settings.gaussian_ksize // 2, groups=channels)


def tokens_to_grid(tokens: Tensor, grid_hw: tuple[int, int]) -> Tensor:
    """Public name of the B×G×N → B×G×h×w reshape (row-major tokens)."""
    return _tokens_to_grid(tokens, grid_hw)
