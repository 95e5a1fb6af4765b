"""INP-Former: frozen encoder + INP Extractor + bottleneck + INP-guided decoder (INP_FORMER.md §2–§5).

Only the head is trained; the encoder is frozen and may be replaced by cached features
(``reconstruct`` takes ``EncodedFeatures`` directly).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from export.model.base import EncodedFeatures, FrozenEncoder, Reconstruction, mean_of
from export.model.layers import AggregationBlock, Mlp, PrototypeAttention, PrototypeBlock

ENCODER_PREFIX = "encoder."


class INPFormer(nn.Module):
    """The INP-Former reconstruction model built on a frozen encoder."""

    def __init__(self, encoder: FrozenEncoder, *, num_inps: int = 6, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        spec = encoder.spec
        _check_groups(spec.groups, spec.num_taps)
        if num_inps < 1:
            raise ValueError(f"num_inps must be at least 1, got {num_inps}")
        dim, heads = spec.embed_dim, spec.num_heads
        self.encoder = encoder.requires_grad_(False)
        self.bottleneck = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio), out_features=dim)
        self.inp_tokens = nn.Parameter(torch.empty(num_inps, dim))
        self.inp_extractor = AggregationBlock(dim=dim, num_heads=heads, mlp_ratio=mlp_ratio)
        self.decoder = nn.ModuleList(
            PrototypeBlock(dim=dim, num_heads=heads, mlp_ratio=mlp_ratio) for _ in range(spec.num_taps)
        )
        self.reset_parameters()

    @property
    def groups(self) -> tuple[tuple[int, ...], ...]:
        return self.encoder.spec.groups

    def reset_parameters(self) -> None:
        """INP_FORMER.md §7: trunc-normal linears, unit LayerNorms, N(0,1) INP tokens, unit scales."""
        for name, module in self.named_modules():
            if name == "encoder" or name.startswith(ENCODER_PREFIX):
                continue
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.01, a=-0.03, b=0.03)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, PrototypeAttention):
                nn.init.ones_(module.scale)
        nn.init.normal_(self.inp_tokens, mean=0.0, std=1.0)

    def extract_inps(self, fused: Tensor) -> Tensor:
        """B×M×C intrinsic normal prototypes of each image, from its fused features F_Q (B×N×C)."""
        queries = self.inp_tokens.unsqueeze(0).expand(fused.shape[0], -1, -1)
        return self.inp_extractor(queries, fused)

    def decode(self, fused: Tensor, inps: Tensor) -> list[Tensor]:
        """The outputs of every decoder layer, first layer first."""
        x = self.bottleneck(fused)
        outputs = []
        for layer in self.decoder:
            x = layer(x, inps)
            outputs.append(x)
        return outputs

    def reconstruct(self, features: EncodedFeatures) -> Reconstruction:
        if len(features.groups) != len(self.groups):
            raise ValueError(
                f"features carry {len(features.groups)} groups but the encoder spec has "
                f"{len(self.groups)}; the features (or feature cache) come from another encoder: rebuild them"
            )
        inps = self.extract_inps(features.fused)
        outputs = self.decode(features.fused, inps)[::-1]  # last decoder layer ↔ shallowest group
        decoder_groups = tuple(mean_of([outputs[i] for i in group]) for group in self.groups)
        return Reconstruction(
            encoder_groups=tuple(g.detach() for g in features.groups),
            decoder_groups=decoder_groups,
            inps=inps,
            fused=features.fused,
            grid_hw=features.grid_hw,
        )

    def forward(self, images: Tensor) -> Reconstruction:
        return self.reconstruct(self.encoder(images))

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if not name.startswith(ENCODER_PREFIX)]

    def trainable_state_dict(self) -> dict[str, Tensor]:
        return {k: v for k, v in self.state_dict().items() if not k.startswith(ENCODER_PREFIX)}

    def load_trainable_state_dict(self, state: dict[str, Tensor]) -> None:
        """Load a ``trainable_state_dict``; strict on key names and shapes."""
        expected = self.trainable_state_dict()
        problems = _state_problems(expected, state)
        if problems:
            raise ValueError(
                "INP-Former head weights do not match this model: "
                + "; ".join(problems)
                + ". Load weights saved by trainable_state_dict() from a model with the same encoder, "
                "num_inps and mlp_ratio (or retrain)"
            )
        with torch.no_grad():
            for key, target in expected.items():
                target.copy_(state[key])


def _check_groups(groups: tuple[tuple[int, ...], ...], num_taps: int) -> None:
    flat = [i for group in groups for i in group]
    if not groups or any(not group for group in groups) or any(not 0 <= i < num_taps for i in flat):
        raise ValueError(
            f"encoder spec groups {groups} must be non-empty groups of tap indices in 0..{num_taps - 1}; "
            "fix EncoderSpec.groups of the encoder"
        )


def _state_problems(expected: dict[str, Tensor], state: dict[str, Tensor]) -> list[str]:
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    problems = []
    if missing:
        problems.append(f"missing keys {missing}")
    if unexpected:
        hint = (
            " (encoder weights are not part of the head)"
            if any(k.startswith(ENCODER_PREFIX) for k in unexpected)
            else ""
        )
        problems.append(f"unexpected keys {unexpected}{hint}")
    for key in sorted(set(expected) & set(state)):
        if tuple(expected[key].shape) != tuple(state[key].shape):
            problems.append(
                f"{key} has shape {tuple(state[key].shape)}, expected {tuple(expected[key].shape)}"
            )
    return problems
