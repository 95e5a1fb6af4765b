"""Check an opened model against contract 1 and read its metadata into a ``ModelInfo``.

The names come from ``edge/model/contract.py``; this module only checks them. Every failure is a
``ModelContractError`` that names the model file, the input / output / metadata key at fault, and
the command that fixes it. Tensor descriptions are duck-typed (``name``, ``type``, ``shape``, as
onnxruntime's ``NodeArg``), so the checks are pure functions of what the session reports.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from edge.errors import ModelContractError
from edge.model import contract as c
from edge.model.contract import REEXPORT_FIX, ModelMetadata, parse_input_size

FLOAT32 = "tensor(float)"
UINT8 = "tensor(uint8)"


class TensorArg(Protocol):
    """What onnxruntime reports about one graph input or output."""

    name: str
    type: str
    shape: Sequence[int | str | None]


@dataclass(frozen=True)
class ModelInfo:
    """A model that passed the contract check, with its metadata parsed into typed values."""

    path: Path
    input_hw: tuple[int, int]
    outputs: tuple[str, ...]  # every output of the graph, in graph order
    optional_outputs: tuple[str, ...]  # the optional contract outputs this model has
    meta: ModelMetadata
    props: Mapping[str, str]  # every metadata_props entry, as stored
    sha256: str

    @property
    def encoder(self) -> str:
        return self.meta.encoder

    @property
    def precision(self) -> str:
        return self.meta.precision

    @property
    def model_id(self) -> str:
        return self.meta.model_id


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
    """Parse the metadata through the typed contract, and check it agrees with the graph."""
    if c.META_INPUT_SIZE in metadata:  # the graph is the ground truth: compare before anything else
        text = metadata[c.META_INPUT_SIZE]
        if parse_input_size(text, f"model {path}") != input_hw:
            raise ModelContractError(
                f"model {path} has {c.META_INPUT_SIZE}={text!r} but its input "
                f"'{c.INPUT_IMAGE}' is {input_hw[0]}x{input_hw[1]}",
                fix=REEXPORT_FIX,
            )
    meta = ModelMetadata.from_props(metadata, path)
    return ModelInfo(path, input_hw, outputs, optional, meta, dict(metadata), sha256)


def file_sha256(path: Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()
