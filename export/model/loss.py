"""INP-Former losses: soft-mining global cosine + INP coherence (INP_FORMER.md §6).

Tokens are B×N×C; every per-token cosine is over C.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from export.model.base import Reconstruction, unit_vectors

COS_EPS = 1e-8


def coherence_distance(fused: Tensor, inps: Tensor) -> Tensor:
    """B×N distance of each token to its nearest INP: min_m (1 − cos(F_Q,i, P_m)).

    Also the zero-shot anomaly map (INP_FORMER.md §7, zero-shot).
    """
    tokens = unit_vectors(fused, eps=COS_EPS)
    prototypes = unit_vectors(inps, eps=COS_EPS)
    cosine = tokens @ prototypes.transpose(-2, -1)  # B×N×M
    return (1.0 - cosine).min(dim=-1).values


def coherence_loss(fused: Tensor, inps: Tensor) -> Tensor:
    """L_c: mean over batch and tokens of the coherence distance."""
    return coherence_distance(fused, inps).mean()


class _ScaleGradient(torch.autograd.Function):
    """Identity in the forward pass; multiplies the incoming gradient by ``weight`` in backward."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: Tensor, weight: Tensor) -> Tensor:
        ctx.save_for_backward(weight)
        return x.view_as(x)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> tuple[Tensor, None]:
        (weight,) = ctx.saved_tensors
        return grad * weight, None


def soft_mining_weights(target: Tensor, recon: Tensor, *, gamma: float) -> Tensor:
    """B×N×1 per-token gradient weights (d / mean d)^gamma, d = 1 − cos over C; no gradient."""
    with torch.no_grad():
        distance = (1.0 - F.cosine_similarity(target, recon, dim=-1, eps=COS_EPS)).clamp_min(0.0)
        mean = distance.mean().clamp_min(torch.finfo(distance.dtype).tiny)
        return ((distance / mean) ** gamma).unsqueeze(-1)


def global_cosine_loss(target: Tensor, recon: Tensor) -> Tensor:
    """Mean over the batch of 1 − cos between each image's whole flattened maps."""
    cosine = F.cosine_similarity(target.flatten(1), recon.flatten(1), dim=1, eps=COS_EPS)
    return (1.0 - cosine).mean()


def soft_mining_loss(
    encoder_groups: tuple[Tensor, ...] | list[Tensor],
    decoder_groups: tuple[Tensor, ...] | list[Tensor],
    *,
    gamma: float = 3.0,
) -> Tensor:
    """L_sm: global-cosine value; the decoder-side gradient reweighted per token (INP_FORMER.md §6)."""
    if not encoder_groups or len(encoder_groups) != len(decoder_groups):
        raise ValueError(
            f"soft_mining_loss needs matching non-empty group lists, got {len(encoder_groups)} encoder "
            f"and {len(decoder_groups)} decoder groups; pass Reconstruction.encoder_groups/decoder_groups"
        )
    losses = []
    for target, recon in zip(encoder_groups, decoder_groups, strict=True):
        if target.shape != recon.shape:
            raise ValueError(
                f"encoder group {tuple(target.shape)} and decoder group {tuple(recon.shape)} differ"
            )
        target = target.detach()
        weight = soft_mining_weights(target, recon, gamma=gamma)
        losses.append(global_cosine_loss(target, _ScaleGradient.apply(recon, weight)))
    return torch.stack(losses).mean()


@dataclass(frozen=True)
class LossTerms:
    total: Tensor
    soft_mining: Tensor
    coherence: Tensor


def inp_former_loss(rec: Reconstruction, *, coherence_weight: float = 0.2, gamma: float = 3.0) -> LossTerms:
    """Total = L_sm + coherence_weight · L_c (0.2 in the paper)."""
    soft_mining = soft_mining_loss(rec.encoder_groups, rec.decoder_groups, gamma=gamma)
    coherence = coherence_loss(rec.fused, rec.inps)
    return LossTerms(
        total=soft_mining + coherence_weight * coherence, soft_mining=soft_mining, coherence=coherence
    )
