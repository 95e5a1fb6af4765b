"""Check an opened model against contract 1 and read its metadata into a ``ModelInfo``.

The names come from ``edge/model/contract.py``; this module only checks them. Every failure is a
``ModelContractError`` that names the model file, the input / output / metadata key at fault, and
the command that fixes it. Tensor descriptions are duck-typed (``name``, ``type``, ``shape``, as
onnxruntime's ``NodeArg``), so the checks are pure functions of what the session reports.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from edge.errors import ModelContractError
from edge.model import contract as c

SUPPORTED_SCHEMA_VERSIONS = (c.SCHEMA_VERSION,)
PRECISIONS = ("fp32", "fp16", "int8")
REEXPORT_FIX = "re-export the model with `inp-export export --checkpoint CHECKPOINT --out MODEL.onnx`"
JSON_KEYS = (c.META_TRAINING_DATA, c.META_SCORE_STATS, c.META_PREPROCESS)
FLOAT32 = "tensor(float)"
UINT8 = "tensor(uint8)"


class TensorArg(Protocol):
    """What onnxruntime reports about one graph input or output."""

    name: str
    type: str
    shape: Sequence[int | str | None]


@dataclass(frozen=True)
class ModelInfo:
    """A model that passed the contract check, with its metadata parsed."""

    path: Path
    input_hw: tuple[int, int]
    outputs: tuple[str, ...]  # every output of the graph, in graph order
    optional_outputs: tuple[str, ...]  # the optional contract outputs this model has
    metadata: Mapping[str, str]  # every metadata_props entry, as stored
    encoder: str
    precision: str  # fp32 | fp16 | int8
    model_id: str
    schema_version: str
    score_stats: Mapping[str, Any]
    preprocess: Mapping[str, Any]
    training_data: Mapping[str, Any]
    sha256: str


def check_contract(session: Any, path: str | Path) -> ModelInfo:
    """Check an ``onnxruntime.InferenceSession`` opened from ``path`` against contract 1."""
    path = Path(path)
    input_hw = check_input(session.get_inputs(), path)
    outputs, optional = check_outputs(session.get_outputs(), input_hw, path)
    metadata = dict(session.get_modelmeta().custom_metadata_map)
    return build_info(path, input_hw, outputs, optional, metadata, file_sha256(path))


def check_input(inputs: Sequence[TensorArg], path: Path) -> tuple[int, int]:
    """The (H, W) of the single uint8 (1, H, W, 3) input named ``image``."""
    names = [arg.name for arg in inputs]
    if names != [c.INPUT_IMAGE]:
        raise ModelContractError(
            f"model {path} has inputs {names}; the contract needs exactly one input "
            f"'{c.INPUT_IMAGE}' uint8 (1, H, W, 3) RGB",
            fix=REEXPORT_FIX,
        )
    arg = inputs[0]
    where = f"input '{arg.name}' of model {path}"
    if arg.type != UINT8:
        raise ModelContractError(
            f"{where} is {arg.type}; the contract needs tensor(uint8) (the graph casts and normalises)",
            fix=REEXPORT_FIX,
        )
    shape = list(arg.shape)
    if len(shape) != 4 or not all(isinstance(dim, int) and dim > 0 for dim in shape):
        raise ModelContractError(
            f"{where} has shape {shape}; the contract needs a static (1, H, W, 3) shape",
            fix=f"{REEXPORT_FIX} (export with a fixed input size)",
        )
    batch, height, width, channels = shape
    if batch != 1 or channels != 3:
        layout_hint = " (it looks like NCHW; the contract is NHWC)" if shape[1] == 3 else ""
        raise ModelContractError(
            f"{where} has shape {shape}; the contract needs (1, H, W, 3){layout_hint}", fix=REEXPORT_FIX
        )
    return height, width


def check_outputs(
    outputs: Sequence[TensorArg], input_hw: tuple[int, int], path: Path
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """All output names and the optional contract outputs present; checks dtypes and shapes."""
    by_name = {arg.name: arg for arg in outputs}
    for name in c.REQUIRED_OUTPUTS:
        if name not in by_name:
            raise ModelContractError(
                f"model {path} has no output '{name}' (its outputs: {sorted(by_name)})", fix=REEXPORT_FIX
            )
    height, width = input_hw
    expected: dict[str, tuple[int | None, ...]] = {
        c.OUTPUT_ANOMALY_MAP: (1, height, width),
        c.OUTPUT_PRED_SCORE: (1,),
        c.OUTPUT_PATCH_FEATURES: (1, None, None),
        c.OUTPUT_INP_DISTANCE: (1, height, width),
    }
    for name, want in expected.items():
        if name in by_name:
            _check_float_output(by_name[name], want, path)
    optional = tuple(name for name in c.OPTIONAL_OUTPUTS if name in by_name)
    return tuple(arg.name for arg in outputs), optional


def _check_float_output(arg: TensorArg, want: tuple[int | None, ...], path: Path) -> None:
    where = f"output '{arg.name}' of model {path}"
    wanted = "(" + ", ".join("?" if dim is None else str(dim) for dim in want) + ")"
    if arg.type != FLOAT32:
        raise ModelContractError(f"{where} is {arg.type}; the contract needs tensor(float)", fix=REEXPORT_FIX)
    shape = list(arg.shape)
    if len(shape) != len(want):
        raise ModelContractError(f"{where} has shape {shape}; the contract needs {wanted}", fix=REEXPORT_FIX)
    for dim, wanted_dim in zip(shape, want, strict=True):
        if isinstance(dim, int) and wanted_dim is not None and dim != wanted_dim:
            raise ModelContractError(
                f"{where} has shape {shape}; the contract needs {wanted}", fix=REEXPORT_FIX
            )


def build_info(
    path: Path,
    input_hw: tuple[int, int],
    outputs: tuple[str, ...],
    optional: tuple[str, ...],
    metadata: Mapping[str, str],
    sha256: str,
) -> ModelInfo:
    """Check the metadata keys and values, and assemble the ``ModelInfo``."""
    missing = [key for key in c.REQUIRED_METADATA if key not in metadata]
    if missing:
        raise ModelContractError(
            f"model {path} lacks metadata key(s) {', '.join(missing)} (it has: {sorted(metadata) or 'none'})",
            fix=REEXPORT_FIX,
        )
    schema = metadata[c.META_SCHEMA_VERSION]
    if schema not in SUPPORTED_SCHEMA_VERSIONS:
        raise ModelContractError(
            f"model {path} has {c.META_SCHEMA_VERSION}={schema!r}; this inp-edge reads "
            f"{', '.join(SUPPORTED_SCHEMA_VERSIONS)}",
            fix=f"{REEXPORT_FIX} with the inp-export that matches this inp-edge, or upgrade inp-edge",
        )
    _check_input_size(metadata[c.META_INPUT_SIZE], input_hw, path)
    precision = metadata[c.META_PRECISION]
    if precision not in PRECISIONS:
        raise ModelContractError(
            f"model {path} has {c.META_PRECISION}={precision!r}; expected one of {', '.join(PRECISIONS)}",
            fix=REEXPORT_FIX,
        )
    parsed = {key: parse_json_metadata(metadata, key, path) for key in JSON_KEYS}
    return ModelInfo(
        path=path,
        input_hw=input_hw,
        outputs=outputs,
        optional_outputs=optional,
        metadata=dict(metadata),
        encoder=_non_empty(metadata, c.META_ENCODER, path),
        precision=precision,
        model_id=_non_empty(metadata, c.META_MODEL_ID, path),
        schema_version=schema,
        score_stats=parsed[c.META_SCORE_STATS],
        preprocess=parsed[c.META_PREPROCESS],
        training_data=parsed[c.META_TRAINING_DATA],
        sha256=sha256,
    )


def _check_input_size(text: str, input_hw: tuple[int, int], path: Path) -> None:
    try:
        height_text, width_text = text.lower().split("x")
        size_hw = (int(height_text), int(width_text))
    except ValueError:
        raise ModelContractError(
            f"model {path} has {c.META_INPUT_SIZE}={text!r}; expected 'HxW', e.g. '256x256'",
            fix=REEXPORT_FIX,
        ) from None
    if size_hw != input_hw:
        raise ModelContractError(
            f"model {path} has {c.META_INPUT_SIZE}={text!r} but its input '{c.INPUT_IMAGE}' is "
            f"{input_hw[0]}x{input_hw[1]}",
            fix=REEXPORT_FIX,
        )


def parse_json_metadata(metadata: Mapping[str, str], key: str, path: Path) -> dict[str, Any]:
    """The JSON object stored under ``key``; a clear error when it is not one."""
    try:
        value = json.loads(metadata[key])
    except json.JSONDecodeError as exc:
        raise ModelContractError(
            f"model {path} has metadata key {key} that is not valid JSON ({exc.msg} at char {exc.pos})",
            fix=REEXPORT_FIX,
        ) from None
    if not isinstance(value, dict):
        raise ModelContractError(
            f"model {path} has metadata key {key} holding a JSON {type(value).__name__}; expected an object",
            fix=REEXPORT_FIX,
        )
    return value


def _non_empty(metadata: Mapping[str, str], key: str, path: Path) -> str:
    value = metadata[key].strip()
    if not value:
        raise ModelContractError(f"model {path} has an empty metadata key {key}", fix=REEXPORT_FIX)
    return value


def file_sha256(path: Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()
