"""A PatchCore-style nearest-neighbour baseline on the frozen encoder's tokens.

Fit stores the tokens of good training images as a memory bank, optionally thinned to a
coreset; a test token's anomaly distance is the L2 distance to its nearest bank token. The
resulting B×N distances become maps and scores through ``export.model.postprocess.token_map``
and ``image_score``, exactly like the model's, so the two are compared on equal terms.

Which tokens: pass ``EncodedFeatures.fused`` (F_Q, the mean of all taps; what
``baseline_tokens(features)`` returns). It is the feature the INP-Former head itself starts
from, has the encoder's C channels, and mixes shallow and deep taps the way PatchCore mixes
its two mid-level stages. ``baseline_tokens(features, use="groups")`` concatenates the group
means instead (2·C channels, twice the cost) for a check of that choice.

Coreset: greedy k-center selection (PatchCore) on a fixed random projection to at most 128
dimensions, 10 % of the bank by default. Its cost is about ratio · M² · 128 multiply-adds for a
bank of M tokens: measured 12 s on one CPU thread for M = 51 200 tokens of C = 320 (200 images
of 16×16 tokens). It grows with M², so use ``coreset="random"`` for banks far larger than that,
and ``coreset="none"`` for few-shot banks (small, and exact).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from export.model.base import EncodedFeatures

CORESET_METHODS = ("greedy", "random", "none")


@dataclass(frozen=True)
class KnnSettings:
    coreset: str = "greedy"  # one of CORESET_METHODS
    coreset_ratio: float = 0.1  # share of the bank kept by the coreset
    projection_dim: int = 128  # greedy selection works on a random projection this wide
    query_chunk: int = 1024  # test tokens per distance block
    bank_chunk: int = 16384  # bank tokens per distance block (block ≤ 64 MiB of float32)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.coreset not in CORESET_METHODS:
            raise ValueError(f"KnnSettings.coreset must be one of {CORESET_METHODS}, got {self.coreset!r}")
        if not 0.0 < self.coreset_ratio <= 1.0:
            raise ValueError(f"KnnSettings.coreset_ratio must be in (0, 1], got {self.coreset_ratio}")
        if min(self.projection_dim, self.query_chunk, self.bank_chunk) < 1:
            raise ValueError("KnnSettings.projection_dim, query_chunk and bank_chunk must all be >= 1")


def baseline_tokens(features: EncodedFeatures, use: str = "fused") -> Tensor:
    """B×N×C tokens for the baseline: ``fused`` (recommended) or ``groups`` (concatenated, B×N×G·C)."""
    if use == "fused":
        return features.fused
    if use == "groups":
        return torch.cat(features.groups, dim=-1)
    raise ValueError(f"baseline_tokens use must be 'fused' or 'groups', got {use!r}")


class KnnBaseline:
    """Nearest-neighbour distance of test tokens to a bank of good training tokens."""

    def __init__(self, settings: KnnSettings | None = None) -> None:
        self.settings = settings or KnnSettings()
        self._bank: Tensor | None = None

    @property
    def memory_bank(self) -> Tensor:
        if self._bank is None:
            raise RuntimeError("KnnBaseline has no memory bank yet: call fit(train_tokens) first")
        return self._bank

    def fit(self, train_tokens: Tensor) -> KnnBaseline:
        """Build the bank from good images' tokens, N_images×N×C (or already flat M×C)."""
        if train_tokens.dim() not in (2, 3) or train_tokens.numel() == 0:
            raise ValueError(
                f"KnnBaseline.fit expects N_images×N×C training tokens, got shape {tuple(train_tokens.shape)}"
            )
        bank = train_tokens.detach().reshape(-1, train_tokens.shape[-1]).to(torch.float32)
        self._bank = select_coreset(bank, self.settings).contiguous()
        return self

    def score(self, test_tokens: Tensor) -> Tensor:
        """B×N L2 distance of every test token to its nearest bank token."""
        bank = self.memory_bank
        if test_tokens.dim() != 3 or test_tokens.shape[-1] != bank.shape[-1]:
            raise ValueError(
                f"KnnBaseline.score expects B×N×{bank.shape[-1]} tokens (the channels it was fitted on), "
                f"got shape {tuple(test_tokens.shape)}"
            )
        queries = test_tokens.detach().reshape(-1, bank.shape[-1]).to(torch.float32)
        distances = nearest_distances(queries, bank, self.settings.query_chunk, self.settings.bank_chunk)
        return distances.reshape(test_tokens.shape[:2])


def nearest_distances(queries: Tensor, bank: Tensor, query_chunk: int, bank_chunk: int) -> Tensor:
    """Q distances to the nearest of M bank rows, in query_chunk × bank_chunk blocks.

    Blocks use the fast matrix-product form of ``torch.cdist``; the reported distance is then
    recomputed directly against the chosen neighbour, so an exact match reads exactly 0.
    """
    result = torch.empty(queries.shape[0], dtype=queries.dtype)
    with torch.no_grad():
        for start in range(0, queries.shape[0], query_chunk):
            block = queries[start : start + query_chunk]
            best = torch.full((block.shape[0],), float("inf"), dtype=queries.dtype)
            best_index = torch.zeros(block.shape[0], dtype=torch.long)
            for bank_start in range(0, bank.shape[0], bank_chunk):
                part = torch.cdist(block, bank[bank_start : bank_start + bank_chunk])
                part_min, part_index = part.min(dim=1)
                better = part_min < best
                best = torch.where(better, part_min, best)
                best_index = torch.where(better, part_index + bank_start, best_index)
            result[start : start + block.shape[0]] = (block - bank[best_index]).norm(dim=1)
    return result


def select_coreset(bank: Tensor, settings: KnnSettings) -> Tensor:
    """The rows of an M×C bank kept by the configured coreset method."""
    size = max(1, int(round(bank.shape[0] * settings.coreset_ratio)))
    if settings.coreset == "none" or size >= bank.shape[0]:
        return bank
    generator = torch.Generator().manual_seed(settings.seed)
    if settings.coreset == "random":
        return bank[torch.randperm(bank.shape[0], generator=generator)[:size]]
    return bank[greedy_k_center(bank, size, settings.projection_dim, generator)]


def greedy_k_center(bank: Tensor, size: int, projection_dim: int, generator: torch.Generator) -> Tensor:
    """Indices of ``size`` rows chosen greedily to minimise the largest distance to the chosen set."""
    points = bank
    if bank.shape[1] > projection_dim:
        projection = torch.randn(bank.shape[1], projection_dim, generator=generator) / projection_dim**0.5
        points = bank @ projection
    squared_norms = (points * points).sum(dim=1)
    chosen = torch.empty(size, dtype=torch.long)
    chosen[0] = int(torch.randint(bank.shape[0], (1,), generator=generator))
    min_squared = torch.full((bank.shape[0],), float("inf"))
    with torch.no_grad():
        for step in range(size):
            if step > 0:
                chosen[step] = torch.argmax(min_squared)
            center = points[chosen[step]]
            squared = squared_norms - 2.0 * (points @ center) + squared_norms[chosen[step]]
            torch.minimum(min_squared, squared, out=min_squared)
    return chosen
