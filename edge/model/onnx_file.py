"""Read an ONNX file's ``metadata_props`` without onnx or onnxruntime, and catch broken files.

An ONNX file is one protobuf ``ModelProto``. Its top-level fields are scanned and everything but
``metadata_props`` is skipped with a seek, so this is cheap even for a large model. It lets the
session pick provider options from the model's precision before onnxruntime opens it, and it turns
a missing file, a truncated copy or a file that is not ONNX into a ``ModelLoadError`` naming the path.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

from edge.errors import ModelLoadError

_GRAPH_FIELD, _METADATA_FIELD = 7, 14  # ModelProto field numbers (onnx.proto)
_CORRUPT_FIX = (
    "copy the model again (its sha256 must match the exported file) or re-export it with `inp-export`"
)


def read_metadata_props(path: Path) -> dict[str, str]:
    """``metadata_props`` of an ONNX file, read from the top-level protobuf fields only.

    Cheap (the graph is skipped with a seek), and the first line of defence: a missing file, a
    truncated copy or a file that is not an ONNX model becomes a ``ModelLoadError`` naming the path.
    """
    where = f"model file {path}"
    if not path.is_file():
        problem = "is not a file" if path.exists() else "does not exist"
        raise ModelLoadError(
            f"{where} {problem}", fix="check the model path (command line or station config)"
        )
    size = path.stat().st_size
    metadata: dict[str, str] = {}
    seen_graph = False
    try:
        with path.open("rb") as stream:
            while (key := _read_varint(stream, where)) is not None:
                field, wire = key >> 3, key & 7
                if field == _METADATA_FIELD and wire == 2:
                    entry = _read_len(stream, size, where)
                    metadata.update([_parse_entry(entry, where)])
                else:
                    seen_graph = seen_graph or field == _GRAPH_FIELD
                    _skip(stream, field, wire, size, where)
    except OSError as exc:
        raise ModelLoadError(
            f"cannot read {where}: {exc.strerror}", fix="check the file permissions"
        ) from None
    if not seen_graph:
        raise ModelLoadError(f"{where} is not an ONNX model (it has no graph)", fix=_CORRUPT_FIX)
    return metadata


def _read_varint(stream: BinaryIO, where: str) -> int | None:
    value, shift = 0, 0
    while byte := stream.read(1):
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return value
        shift += 7
        if shift > 63:
            raise ModelLoadError(f"{where} is not an ONNX model (bad varint)", fix=_CORRUPT_FIX)
    if shift:
        raise ModelLoadError(f"{where} is truncated (it ends inside a field)", fix=_CORRUPT_FIX)
    return None


def _read_len(stream: BinaryIO, size: int, where: str) -> bytes:
    length = _read_varint(stream, where) or 0
    start = stream.tell()
    if start + length > size:
        raise ModelLoadError(
            f"{where} is truncated: a field at byte {start} needs {length} bytes but the file has {size}",
            fix=_CORRUPT_FIX,
        )
    return stream.read(length)


def _skip(stream: BinaryIO, field: int, wire: int, size: int, where: str) -> None:
    if field == 0 or wire not in (0, 1, 2, 5):
        raise ModelLoadError(f"{where} is not an ONNX model (bad protobuf field)", fix=_CORRUPT_FIX)
    if wire == 0:
        _read_varint(stream, where)
        return
    length = {1: 8, 5: 4}.get(wire) or (_read_varint(stream, where) or 0)
    if stream.tell() + length > size:
        raise ModelLoadError(
            f"{where} is truncated: field {field} at byte {stream.tell()} needs {length} bytes "
            f"but the file has {size}",
            fix=_CORRUPT_FIX,
        )
    stream.seek(length, 1)


def _parse_entry(entry: bytes, where: str) -> tuple[str, str]:
    """One StringStringEntryProto (key = field 1, value = field 2)."""
    stream, parts = io.BytesIO(entry), {1: b"", 2: b""}
    while (key := _read_varint(stream, where)) is not None:
        if key & 7 != 2:
            raise ModelLoadError(f"{where} has a corrupt metadata entry", fix=_CORRUPT_FIX)
        parts[key >> 3] = _read_len(stream, len(entry), where)
    try:
        return parts[1].decode("utf-8"), parts[2].decode("utf-8")
    except UnicodeDecodeError:
        raise ModelLoadError(f"{where} has a metadata entry that is not UTF-8", fix=_CORRUPT_FIX) from None
