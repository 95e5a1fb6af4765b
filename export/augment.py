"""The 22 fixed few-shot augmentations of one shot (INP_FORMER.md §7, inspired by RegAD).

Every view is a deterministic function of the image, so the augmented set can be computed once
and its encoder features cached. Views are made on [0, 1] RGB images (our encoders normalise
inside); the authors apply them to normalised tensors, which differs only for the grayscale view.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

View = Callable[[Tensor], Tensor]  # B×3×H×W → B×3×H×W

ROTATION_ANGLES_RAD = (math.pi / 16, math.pi / 8, 3 * math.pi / 16, math.pi / 4)
TRANSLATIONS = (0.2, 0.1)  # in normalised [-1, 1] grid units (±10 % and ±5 % of the size)
GRAY_WEIGHTS_RGB = (0.299, 0.587, 0.114)


def _warp(images: Tensor, theta: list[list[float]]) -> Tensor:
    """Affine warp with reflection padding; ``theta`` maps output to input grid coordinates."""
    matrix = torch.tensor(theta, dtype=images.dtype).expand(images.shape[0], 2, 3)
    grid = F.affine_grid(matrix, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def rotate(images: Tensor, angle_rad: float) -> Tensor:
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    return _warp(images, [[c, -s, 0.0], [s, c, 0.0]])


def translate(images: Tensor, dx: float, dy: float) -> Tensor:
    return _warp(images, [[1.0, 0.0, dx], [0.0, 1.0, dy]])


def hflip(images: Tensor) -> Tensor:
    return images.flip(-1)


def grayscale(images: Tensor) -> Tensor:
    weights = torch.tensor(GRAY_WEIGHTS_RGB, dtype=images.dtype).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True).expand_as(images).clone()


def rotate_quarter(images: Tensor, quarters: int) -> Tensor:
    """Rotation by 90°·quarters: exact on square images, a reflection-padded warp otherwise."""
    if images.shape[-1] == images.shape[-2]:
        return torch.rot90(images, quarters, dims=(-2, -1))
    return rotate(images, quarters * math.pi / 2)


def _views() -> tuple[tuple[str, View], ...]:
    views: list[tuple[str, View]] = [("original", lambda x: x)]
    for angle in ROTATION_ANGLES_RAD:
        for sign in (1, -1):
            views.append((f"rotate_{sign * angle:+.4f}rad", lambda x, a=sign * angle: rotate(x, a)))
    for shift in TRANSLATIONS:
        for dx, dy in ((shift, shift), (-shift, shift), (shift, -shift), (-shift, -shift)):
            views.append((f"translate_{dx:+.1f}_{dy:+.1f}", lambda x, a=dx, b=dy: translate(x, a, b)))
    views.append(("hflip", hflip))
    views.append(("grayscale", grayscale))
    for quarters in (1, 2, 3):
        views.append((f"rotate_{90 * quarters}deg", lambda x, q=quarters: rotate_quarter(x, q)))
    return tuple(views)


VIEWS = _views()
VIEW_NAMES = tuple(name for name, _ in VIEWS)
NUM_VIEWS = len(VIEWS)  # 22


def expand_shot(image: Tensor) -> Tensor:
    """One 3×H×W [0, 1] image → its 22 views, 22×3×H×W, the original first."""
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"expand_shot takes one 3×H×W image, got shape {tuple(image.shape)}")
    batch = image.unsqueeze(0).float()
    return torch.cat([view(batch) for _, view in VIEWS], dim=0).clamp_(0.0, 1.0)


class ShotViews:
    """The 22 views of each shot as one indexable image set (item = shot · 22 + view), made on demand."""

    def __init__(self, shots: Tensor) -> None:
        if shots.ndim != 4 or shots.shape[1] != 3:
            raise ValueError(f"shots must be S×3×H×W images, got shape {tuple(shots.shape)}")
        self.shots = shots.float()

    def __len__(self) -> int:
        return self.shots.shape[0] * NUM_VIEWS

    def images(self, indices: list[int]) -> Tensor:
        views = [VIEWS[i % NUM_VIEWS][1](self.shots[i // NUM_VIEWS].unsqueeze(0)) for i in indices]
        return torch.cat(views, dim=0).clamp_(0.0, 1.0)
