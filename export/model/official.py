"""The INP-Former authors' released checkpoints (luow23/INP-Former) in our model, loaded strictly.

Their ``saved_results/<name>/model.pth`` is the whole ``state_dict`` of their ``INP_Former``: the
frozen DINOv2-reg encoder under Meta's key names (``encoder.*``), the INP tokens
(``prototype_token``, M×C), the bottleneck MLP (``bottleneck.0.*``), the INP Extractor
(``aggregation.0.*``) and the 8 decoder layers (``decoder.<i>.*``, per-head scale ``learn_scale``).
``official_key_map`` names every one of their keys and the key of ours it becomes; any other key,
a missing key or a shape mismatch is an ``OfficialCheckpointError`` naming it. Nothing is dropped:
the encoder blocks INP-Former never runs (after the last tap), the final norm and the mask token
are loaded into our encoder's modules of the same names (also never run), so the encoder weights
extracted by ``export.official_convert`` are a complete Meta-format file. See
docs/official-checkpoints.md.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from edge.errors import InpEdgeError
from export.checkpoint import FORMAT as CHECKPOINT_FORMAT
from export.model.dinov2 import DinoV2Encoder
from export.model.encoders import DINOV2_VARIANTS, build_encoder
from export.model.inp_former import INPFormer

RELEASE = "luow23/INP-Former"
# Their encoder names (vit_encoder.load) → ours.
THEIR_ENCODER_NAMES = {
    "dinov2reg_vit_small_14": "dinov2_vits14_reg4",
    "dinov2reg_vit_base_14": "dinov2_vitb14_reg4",
    "dinov2reg_vit_large_14": "dinov2_vitl14_reg4",
}
DEFAULT_NUM_INPS = 6
MLP_RATIO = 4.0
WRAPPER_KEYS = ("model", "state_dict")  # a state dict re-packed under one of these is accepted too
_ENCODER_TOP_KEYS = (
    "cls_token", "pos_embed", "register_tokens", "mask_token",
    "patch_embed.proj.weight", "patch_embed.proj.bias", "norm.weight", "norm.bias",
)  # fmt: skip
_ENCODER_BLOCK_KEYS = (
    "norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight",
    "attn.proj.bias", "ls1.gamma", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias",
    "mlp.fc2.weight", "mlp.fc2.bias", "ls2.gamma",
)  # fmt: skip
_MLP_KEYS = ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias")
# Aggregation_Block and Prototype_Block share these names with our AggregationBlock / PrototypeBlock.
_BLOCK_KEYS = (
    "norm1.weight", "norm1.bias", "attn.q.weight", "attn.q.bias", "attn.kv.weight", "attn.kv.bias",
    "attn.proj.weight", "attn.proj.bias", "norm2.weight", "norm2.bias",
    *(f"mlp.{key}" for key in _MLP_KEYS),
)  # fmt: skip
_LISTED_PROBLEMS = 12
_ENCODER_BLOCK = re.compile(r"encoder\.blocks\.(\d+)\.")
# Fields of their saved_results/<name> folder names, e.g. ..._Encoder=dinov2reg_vit_base_14_Resize=448_...
_FIELD_NAMES = "dataset|Encoder|Resize|Crop|INP_num"
_RELEASE_FIELD = re.compile(rf"_({_FIELD_NAMES})=(.*?)(?=_(?:{_FIELD_NAMES})=|$)")


class OfficialCheckpointError(InpEdgeError):
    """An official INP-Former checkpoint that is missing, unreadable or does not fit our model."""


@dataclass(frozen=True)
class OfficialLayout:
    """What a checked official state dict holds."""

    variant: str  # our encoder name, e.g. dinov2_vitb14_reg4
    num_inps: int  # M, rows of prototype_token


def resolve_variant(name: str) -> str:
    """Our encoder name for ``name`` (ours or the authors', e.g. dinov2reg_vit_base_14)."""
    resolved = THEIR_ENCODER_NAMES.get(name, name)
    if resolved not in DINOV2_VARIANTS:
        raise OfficialCheckpointError(
            f"unknown INP-Former encoder variant {name!r}",
            fix=f"pass one of {', '.join(DINOV2_VARIANTS)} (or their names {', '.join(THEIR_ENCODER_NAMES)})",
        )
    return resolved


def official_key_map(variant: str) -> dict[str, str]:
    """Every key of the authors' state dict for ``variant`` → our INPFormer key (complete, 1:1)."""
    spec_variant = DINOV2_VARIANTS[resolve_variant(variant)]
    encoder_keys = list(_ENCODER_TOP_KEYS) + [
        f"blocks.{index}.{key}" for index in range(spec_variant.depth) for key in _ENCODER_BLOCK_KEYS
    ]
    mapping = {f"encoder.{key}": f"encoder.{key}" for key in encoder_keys}
    mapping["prototype_token"] = "inp_tokens"
    mapping.update({f"bottleneck.0.{key}": f"bottleneck.{key}" for key in _MLP_KEYS})
    mapping.update({f"aggregation.0.{key}": f"inp_extractor.{key}" for key in _BLOCK_KEYS})
    for index in range(spec_variant.spec.num_taps):  # one decoder layer per tap: 8
        mapping.update({f"decoder.{index}.{key}": f"decoder.{index}.{key}" for key in _BLOCK_KEYS})
        mapping[f"decoder.{index}.attn.learn_scale"] = f"decoder.{index}.attn.scale"
    return mapping


def never_run_keys(variant: str) -> dict[str, str]:
    """Their keys that are loaded (so the encoder is complete) but never computed, with the reason."""
    spec_variant = DINOV2_VARIANTS[resolve_variant(variant)]
    last_tap = max(spec_variant.tap_blocks)
    reasons = {
        f"encoder.blocks.{index}.{key}": f"encoder block {index} comes after the last tapped block {last_tap}"
        for index in range(last_tap + 1, spec_variant.depth)
        for key in _ENCODER_BLOCK_KEYS
    }
    reasons.update(
        {
            "encoder.norm.weight": "the final encoder norm is never applied",
            "encoder.norm.bias": "the final encoder norm is never applied",
            "encoder.mask_token": "only used for masked-image pretraining",
        }
    )
    return reasons


def release_settings(folder_name: str) -> dict[str, str]:
    """Settings in the authors' ``saved_results/<name>`` folder name ({} if it is not one of theirs).

    ``INP-Former-Multi-Class_dataset=MVTec-AD_Encoder=dinov2reg_vit_base_14_Resize=448_Crop=392_INP_num=6``
    gives setting, dataset, Encoder, Resize, Crop and INP_num.
    """
    first = _RELEASE_FIELD.search(folder_name)
    if first is None:
        return {}
    return {"setting": folder_name[: first.start()], **dict(_RELEASE_FIELD.findall(folder_name))}


def read_official_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The tensors of an official ``model.pth`` (read with ``weights_only``: no pickled code runs)."""
    path = Path(path)
    if not path.is_file():
        raise OfficialCheckpointError(
            f"no official INP-Former checkpoint at {path}",
            fix=f"download model.pth from the links in {RELEASE}'s README (docs/official-checkpoints.md) "
            "and pass its path",
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise OfficialCheckpointError(
            f"cannot read {path} ({type(exc).__name__}: {exc})",
            fix="download it again (a truncated download fails here); a whole pickled model is refused: "
            "load it with the authors' code and save model.state_dict() instead",
        ) from exc
    return _state_dict_of(payload, path)


def _state_dict_of(payload: Any, path: Path) -> dict[str, Tensor]:
    if isinstance(payload, Mapping) and payload.get("format") == CHECKPOINT_FORMAT:
        raise OfficialCheckpointError(
            f"{path} is an inp-edge checkpoint ({CHECKPOINT_FORMAT}), not one of {RELEASE}",
            fix="load it with export.checkpoint.load_model (`inp-export evaluate --checkpoint`)",
        )
    if isinstance(payload, Mapping):
        wrapped = [key for key in WRAPPER_KEYS if isinstance(payload.get(key), Mapping)]
        payload = payload[wrapped[0]] if len(wrapped) == 1 else payload
    if not isinstance(payload, Mapping) or not all(isinstance(v, Tensor) for v in payload.values()):
        raise OfficialCheckpointError(
            f"{path} is not a state dict of tensors (found {type(payload).__name__})",
            fix=f"pass the model.pth of {RELEASE} (the whole state_dict of their INP_Former)",
        )
    return {str(key): value for key, value in payload.items()}


def check_official_state(
    state: Mapping[str, Tensor], *, variant: str | None = None, where: str = "state dict"
) -> OfficialLayout:
    """Variant and M of an official state dict: every key known, none missing, every shape right."""
    looks_like = _guess_variant(state)
    chosen = resolve_variant(variant) if variant is not None else looks_like
    if chosen is None:
        raise _unrecognised(state, where)
    num_inps = _num_inps(state)
    problems = _problems(state, _expected_shapes(chosen, num_inps))
    if problems:
        listed = "\n  ".join(problems[:_LISTED_PROBLEMS])
        more = len(problems) - _LISTED_PROBLEMS
        raise OfficialCheckpointError(
            f"{where} does not fit INP-Former {chosen} with M={num_inps} INPs ({len(problems)} problems):"
            f"\n  {listed}" + (f"\n  … {more} more" if more > 0 else ""),
            fix=(
                f"the file looks like {looks_like}: pass variant={looks_like!r} or leave it unset"
                if looks_like is not None and looks_like != chosen
                else f"use an unmodified model.pth of {RELEASE} (INP-Former; forks add other modules)"
            ),
        )
    return OfficialLayout(variant=chosen, num_inps=num_inps)


def _embed_dim(state: Mapping[str, Tensor]) -> int | None:
    for key in ("encoder.cls_token", "prototype_token"):
        if key in state and state[key].ndim >= 1:
            return int(state[key].shape[-1])
    return None


def _guess_variant(state: Mapping[str, Tensor]) -> str | None:
    indices = {int(match.group(1)) for key in state if (match := _ENCODER_BLOCK.match(key))}
    found = (_embed_dim(state), max(indices) + 1 if indices else 0)
    return next((name for name, v in DINOV2_VARIANTS.items() if (v.spec.embed_dim, v.depth) == found), None)


def _num_inps(state: Mapping[str, Tensor]) -> int:
    tokens = state.get("prototype_token")
    if tokens is not None and tokens.ndim == 2 and tokens.shape[0] > 0:
        return int(tokens.shape[0])
    return DEFAULT_NUM_INPS


def _unrecognised(state: Mapping[str, Tensor], where: str) -> OfficialCheckpointError:
    table = ", ".join(
        f"{name} (C={v.spec.embed_dim}, {v.depth} blocks)" for name, v in DINOV2_VARIANTS.items()
    )
    if "cls_token" in state and any(key.startswith("blocks.") for key in state):
        what = "it looks like Meta's DINOv2 encoder file alone"
    elif any(key.startswith("module.") for key in state):
        what = "its keys start with 'module.' (saved from a DataParallel wrapper)"
    else:
        what = f"no encoder.cls_token / prototype_token / encoder.blocks.* matching {table}"
    return OfficialCheckpointError(
        f"{where} is not an INP-Former checkpoint of {RELEASE} that fits our model: {what}",
        fix="pass their saved_results/<name>/model.pth (keys encoder.*, prototype_token, bottleneck.0.*, "
        "aggregation.0.*, decoder.<i>.*), or name the variant explicitly to see every mismatching key",
    )


def _problems(state: Mapping[str, Tensor], expected: Mapping[str, tuple[int, ...]]) -> list[str]:
    problems = [
        f"shape of {key}: expected {shape}, found {tuple(state[key].shape)}"
        for key, shape in expected.items()
        if key in state and tuple(state[key].shape) != shape
    ]
    problems += [
        f"unknown key {key} (shape {tuple(state[key].shape)})" for key in state if key not in expected
    ]
    problems += [
        f"missing key {key} (expected shape {shape})" for key, shape in expected.items() if key not in state
    ]
    return problems


@functools.lru_cache(maxsize=8)
def _expected_shapes(variant: str, num_inps: int) -> dict[str, tuple[int, ...]]:
    """Their key → the shape of the key of ours it maps to (our model built without storage)."""
    with torch.device("meta"):
        ours = INPFormer(DinoV2Encoder(DINOV2_VARIANTS[variant]), num_inps=num_inps).state_dict()
    mapping = official_key_map(variant)
    targets = set(mapping.values())
    if targets != set(ours):
        raise RuntimeError(
            f"official_key_map({variant!r}) is out of step with INPFormer: unmapped "
            f"{sorted(set(ours) - targets)}, unknown {sorted(targets - set(ours))}"
        )
    return {theirs: tuple(ours[key].shape) for theirs, key in mapping.items()}


def load_official_checkpoint(
    path: str | Path, *, variant: str | None = None, input_size_px: int | None = None
) -> INPFormer:
    """Our INPFormer (eval mode) holding every tensor of an official ``model.pth``.

    ``variant`` (ours or theirs, e.g. dinov2reg_vit_base_14) is inferred from the shapes when None;
    ``input_size_px`` overrides the 392 px input (a multiple of 14).
    """
    path = Path(path)
    state = read_official_state_dict(path)
    layout = check_official_state(state, variant=variant, where=str(path))
    return build_official_model(state, layout, input_size_px=input_size_px)


def build_official_model(
    state: dict[str, Tensor], layout: OfficialLayout, *, input_size_px: int | None = None
) -> INPFormer:
    """The model (eval mode) with the tensors of a checked ``state`` as its own (float32: no copy)."""
    mapping = official_key_map(layout.variant)
    with torch.random.fork_rng(devices=[]):  # the throw-away random init leaves the caller's RNG alone
        encoder = build_encoder(layout.variant, random_weights=True, input_size_px=input_size_px)
    with torch.device("meta"):  # the head gets no storage of its own: every tensor comes from the file
        model = INPFormer(encoder, num_inps=layout.num_inps, mlp_ratio=MLP_RATIO)
    model.load_state_dict(
        {mapping[key]: value.float() for key, value in state.items()}, strict=True, assign=True
    )
    return model.eval()
