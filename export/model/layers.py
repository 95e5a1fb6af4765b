"""The INP-Former blocks: the INP Extractor block and the INP-guided decoder layer (INP_FORMER.md §3, §5).

Tokens are B×N×C throughout. Both block types are pre-norm cross-attention blocks in which ONE
LayerNorm (``norm1``) normalises the queries and the key/value tokens alike.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from export.model.base import unit_vectors

BLOCK_NORM_EPS = 1e-8  # LayerNorm eps of the new blocks (the encoder uses 1e-6)


class Mlp(nn.Module):
    """Linear → GELU → Linear, both with bias and no dropout."""

    def __init__(self, *, in_features: int, hidden_features: int, out_features: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, out_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


def _check_heads(dim: int, num_heads: int) -> None:
    if num_heads < 1 or dim % num_heads != 0:
        raise ValueError(
            f"embed dim {dim} is not divisible into {num_heads} attention heads; "
            "pick a head count that divides the encoder's embed_dim (EncoderSpec.num_heads)"
        )


def _split_heads(x: Tensor, num_heads: int) -> Tensor:
    """B×L×C → B×heads×L×(C/heads)."""
    batch, length, dim = x.shape
    return x.reshape(batch, length, num_heads, dim // num_heads).transpose(1, 2)


def _merge_heads(x: Tensor) -> Tensor:
    """B×heads×L×d → B×L×(heads·d)."""
    batch, heads, length, head_dim = x.shape
    return x.transpose(1, 2).reshape(batch, length, heads * head_dim)


class AggregationAttention(nn.Module):
    """Softmax cross-attention: queries attend to the key/value tokens (INP Extractor)."""

    def __init__(self, *, dim: int, num_heads: int) -> None:
        super().__init__()
        _check_heads(dim, num_heads)
        self.num_heads = num_heads
        self.head_scale = (dim // num_heads) ** -0.5
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, queries: Tensor, tokens: Tensor) -> Tensor:
        q = _split_heads(self.q(queries), self.num_heads)
        k, v = (_split_heads(t, self.num_heads) for t in self.kv(tokens).chunk(2, dim=-1))
        attn = (q @ k.transpose(-2, -1) * self.head_scale).softmax(dim=-1)
        return self.proj(_merge_heads(attn @ v))


class AggregationBlock(nn.Module):
    """T' = T + attn(norm1(T), norm1(F)); P = T' + mlp(norm2(T'))."""

    def __init__(self, *, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=BLOCK_NORM_EPS)
        self.attn = AggregationAttention(dim=dim, num_heads=num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=BLOCK_NORM_EPS)
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio), out_features=dim)

    def forward(self, queries: Tensor, tokens: Tensor) -> Tensor:
        x = queries + self.attn(self.norm1(queries), self.norm1(tokens))
        return x + self.mlp(self.norm2(x))


class PrototypeAttention(nn.Module):
    """INP-guided attention: A = ReLU(cos(q, k) · scale_h) per head, no softmax; out = proj(A V)."""

    def __init__(self, *, dim: int, num_heads: int) -> None:
        super().__init__()
        _check_heads(dim, num_heads)
        self.num_heads = num_heads
        self.scale = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def _weights_and_values(self, x: Tensor, inps: Tensor) -> tuple[Tensor, Tensor]:
        q = unit_vectors(_split_heads(self.q(x), self.num_heads))
        k, v = (_split_heads(t, self.num_heads) for t in self.kv(inps).chunk(2, dim=-1))
        attn = F.relu(q @ unit_vectors(k).transpose(-2, -1) * self.scale)
        return attn, v

    def attention_weights(self, x: Tensor, inps: Tensor) -> Tensor:
        """B×heads×N×M weights for (already normalised) tokens ``x`` and INPs; for inspection."""
        return self._weights_and_values(x, inps)[0]

    def forward(self, x: Tensor, inps: Tensor) -> Tensor:
        attn, v = self._weights_and_values(x, inps)
        return self.proj(_merge_heads(attn @ v))


class PrototypeBlock(nn.Module):
    """One INP-guided decoder layer: x = attn(norm1(x), norm1(P)); x = x + mlp(norm2(x)).

    The first residual is deliberately absent (INP_FORMER.md §5): the layer can only rebuild
    tokens out of the INPs, which is what stops it from copying anomalies through.
    """

    def __init__(self, *, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=BLOCK_NORM_EPS)
        self.attn = PrototypeAttention(dim=dim, num_heads=num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=BLOCK_NORM_EPS)
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio), out_features=dim)

    def forward(self, x: Tensor, inps: Tensor) -> Tensor:
        x = self.attn(self.norm1(x), self.norm1(inps))
        return x + self.mlp(self.norm2(x))
