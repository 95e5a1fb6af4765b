"""Contract 1: the names and the metadata that link an exported model to the device runtime.

Defined once here, as typed frozen values; ``export/`` writes the artifact through them
(``ModelMetadata.to_props``) and ``edge/`` reads and checks it through them
(``ModelMetadata.from_props``). Every key is required, or defaulted here on purpose; unknown keys
are refused, so a producer and a reader cannot drift apart unnoticed. The input size is stored
once (``inp_edge.input_size``); the graph's input shape must agree with it, and the centre crop
of the pre-processing is that size.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from edge.errors import InpEdgeError, ModelContractError

SCHEMA_VERSION = "2"
SUPPORTED_SCHEMA_VERSIONS = (SCHEMA_VERSION,)

INPUT_IMAGE = "image"  # uint8 (1, H, W, 3) RGB
OUTPUT_ANOMALY_MAP = "anomaly_map"  # float32 (1, H, W), higher = more anomalous
OUTPUT_PRED_SCORE = "pred_score"  # float32 (1,), mean of the top 1 % of the map
OUTPUT_PATCH_FEATURES = "patch_features"  # optional float32 (1, N, C)
OUTPUT_INP_DISTANCE = "inp_distance"  # optional float32 (1, H, W), zero-shot map

REQUIRED_OUTPUTS = (OUTPUT_ANOMALY_MAP, OUTPUT_PRED_SCORE)
OPTIONAL_OUTPUTS = (OUTPUT_PATCH_FEATURES, OUTPUT_INP_DISTANCE)
ALL_OUTPUTS = (*REQUIRED_OUTPUTS, *OPTIONAL_OUTPUTS)

# metadata_props keys (values are strings; *_json values are JSON objects)
META_SCHEMA_VERSION = "inp_edge.schema_version"
META_INPUT_SIZE = "inp_edge.input_size"  # "HxW", e.g. "256x256": the one record of the input size
META_ENCODER = "inp_edge.encoder"  # e.g. "efficientnet_lite0"
META_PRECISION = "inp_edge.precision"  # fp32 | fp16 | int8
META_TRAINING_DATA = "inp_edge.training_data_json"  # TrainingData
META_SCORE_STATS = "inp_edge.score_stats_json"  # ScoreStats of the training good parts
META_MODEL_ID = "inp_edge.model_id"  # short human id, e.g. "bottle-effl0-20261122"
META_PREPROCESS = "inp_edge.preprocess_json"  # Preprocess

REQUIRED_METADATA = (
    META_SCHEMA_VERSION,
    META_INPUT_SIZE,
    META_ENCODER,
    META_PRECISION,
    META_TRAINING_DATA,
    META_SCORE_STATS,
    META_MODEL_ID,
    META_PREPROCESS,
)

PRECISIONS = ("fp32", "fp16", "int8")
# THE resize of edge/model/preprocess.py (resize_to): a Gaussian anti-aliasing pre-filter of the
# variance of PIL's / torch's antialiased bilinear, then OpenCV bilinear, on uint8 RGB; training and
# the device run the same function.
RESIZE_METHOD = "opencv-gaussian-antialias-bilinear"
RESIZE_METHODS = (RESIZE_METHOD,)
COLOR_ORDERS = ("RGB",)
REEXPORT_FIX = "re-export the model with `inp-export export --checkpoint CHECKPOINT --out MODEL.onnx`"


@dataclass(frozen=True)
class Preprocess:
    """What the device does before the graph, and the map settings inside it (for the record).

    Before the graph: square resize of the frame (or its region of interest) to ``resize_px`` with
    ``resize_method``, then a centre crop to the model's input size, in ``color`` order.
    """

    resize_px: int
    resize_method: str = RESIZE_METHOD
    color: str = "RGB"
    map_size_px: int = 256  # in the graph: the smoothed map's size before the top-k score
    gaussian_sigma: float = 4.0
    top_ratio: float = 0.01


@dataclass(frozen=True)
class ScoreStats:
    """Raw ``pred_score`` statistics of good parts (the starting point for device thresholds)."""

    n: int
    mean: float
    std: float
    min: float
    max: float
    p50: float
    p90: float
    p95: float
    p99: float
    source: str  # where the scores came from, e.g. "training good images (in-sample)"


@dataclass(frozen=True)
class TrainingData:
    """What the model was trained on."""

    layout: str  # mvtec | folder | synthetic
    data_root: str
    categories: tuple[str, ...]
    images_per_category: Mapping[str, int]
    num_images: int
    mode: str  # full | few-shot | none
    shots: int | None = None
    views_per_image: int = 1
    num_items: int = 0
    files: tuple[str, ...] | None = None  # the shots, in few-shot mode
    fingerprint: str = ""  # short hash of the file list


@dataclass(frozen=True)
class ModelMetadata:
    """Everything an artifact says about itself in ``metadata_props``."""

    input_hw: tuple[int, int]
    encoder: str
    precision: str
    model_id: str
    preprocess: Preprocess
    score_stats: ScoreStats
    training_data: TrainingData
    schema_version: str = SCHEMA_VERSION
    extra: Mapping[str, str] = field(default_factory=dict)  # other keys, outside the contract

    @property
    def crop_px(self) -> int:
        return self.input_hw[0]

    def to_props(self) -> dict[str, str]:
        """The ``metadata_props`` entries (strings; JSON objects with sorted keys)."""
        check_metadata(self, where="metadata being written")
        props = dict(self.extra)
        props.update(
            {
                META_SCHEMA_VERSION: self.schema_version,
                META_INPUT_SIZE: f"{self.input_hw[0]}x{self.input_hw[1]}",
                META_ENCODER: self.encoder,
                META_PRECISION: self.precision,
                META_MODEL_ID: self.model_id,
                META_PREPROCESS: _json(asdict(self.preprocess)),
                META_SCORE_STATS: _json(asdict(self.score_stats)),
                META_TRAINING_DATA: _json(asdict(self.training_data)),
            }
        )
        return props

    @classmethod
    def from_props(cls, props: Mapping[str, str], path: str | Path) -> ModelMetadata:
        """Parse and check ``metadata_props``; every fault names the key, the file and the fix."""
        where = f"model {path}"
        missing = [key for key in REQUIRED_METADATA if key not in props]
        if missing:
            raise ModelContractError(
                f"{where} lacks metadata key(s) {', '.join(missing)} (it has: {sorted(props) or 'none'})",
                fix=REEXPORT_FIX,
            )
        schema = props[META_SCHEMA_VERSION]
        if schema not in SUPPORTED_SCHEMA_VERSIONS:
            raise ModelContractError(
                f"{where} has {META_SCHEMA_VERSION}={schema!r}; this inp-edge reads "
                f"{', '.join(SUPPORTED_SCHEMA_VERSIONS)}",
                fix=f"{REEXPORT_FIX} with the inp-export that matches this inp-edge, or upgrade inp-edge",
            )
        metadata = cls(
            input_hw=parse_input_size(props[META_INPUT_SIZE], where),
            encoder=props[META_ENCODER].strip(),
            precision=props[META_PRECISION],
            model_id=props[META_MODEL_ID].strip(),
            preprocess=_record(Preprocess, props, META_PREPROCESS, where),
            score_stats=_record(ScoreStats, props, META_SCORE_STATS, where),
            training_data=_record(TrainingData, props, META_TRAINING_DATA, where),
            schema_version=schema,
            extra={key: value for key, value in props.items() if key not in REQUIRED_METADATA},
        )
        check_metadata(metadata, where=where)
        return metadata


def parse_input_size(text: str, where: str) -> tuple[int, int]:
    try:
        height_text, width_text = text.lower().split("x")
        height, width = int(height_text), int(width_text)
    except ValueError:
        height = width = 0
    if height < 1 or width < 1:
        raise ModelContractError(
            f"{where} has {META_INPUT_SIZE}={text!r}; expected 'HxW' with positive sides, e.g. '256x256'",
            fix=REEXPORT_FIX,
        )
    return height, width


def check_metadata(metadata: ModelMetadata, *, where: str) -> None:
    """The value rules of contract 1 (pure): a ``ModelContractError`` naming the first fault."""
    problems = list(_problems(metadata))
    if problems:
        key, text = problems[0]
        raise ModelContractError(f"{where} has {key} {text}", fix=REEXPORT_FIX)


def _problems(m: ModelMetadata):
    height, width = m.input_hw
    if height != width:
        yield META_INPUT_SIZE, f"{height}x{width}; the model input must be square (a centre crop)"
    if m.precision not in PRECISIONS:
        yield META_PRECISION, f"{m.precision!r}; expected one of {', '.join(PRECISIONS)}"
    for key, value in ((META_ENCODER, m.encoder), (META_MODEL_ID, m.model_id)):
        if not value:
            yield key, "empty; it must name something"
    p = m.preprocess
    if p.resize_px < height:
        yield META_PREPROCESS, f"resize_px {p.resize_px} below the input size {height} (the crop)"
    if p.resize_method not in RESIZE_METHODS:
        yield META_PREPROCESS, f"resize_method {p.resize_method!r}; this inp-edge knows {RESIZE_METHODS}"
    if p.color not in COLOR_ORDERS:
        yield META_PREPROCESS, f"color {p.color!r}; expected one of {COLOR_ORDERS}"
    s = m.score_stats
    ordered = [s.min, s.p50, s.p90, s.p95, s.p99, s.max]
    numbers = [s.mean, s.std, *ordered]
    if s.n < 1:
        yield META_SCORE_STATS, f"n={s.n}; statistics need at least one good part"
    elif not all(math.isfinite(value) for value in numbers) or s.std < 0:
        yield META_SCORE_STATS, "with a value that is not finite (or a negative std)"
    elif any(a > b for a, b in zip(ordered, ordered[1:], strict=False)):
        yield META_SCORE_STATS, f"out of order: min <= p50 <= p90 <= p95 <= p99 <= max fails for {ordered}"


def _record(kind: type, props: Mapping[str, str], key: str, where: str) -> Any:
    """A frozen record from the JSON object under the metadata key ``key``."""
    try:
        value = json.loads(props[key])
    except json.JSONDecodeError as exc:
        raise ModelContractError(
            f"{where} has metadata key {key} that is not valid JSON ({exc.msg} at char {exc.pos})",
            fix=REEXPORT_FIX,
        ) from None
    if not isinstance(value, dict):
        raise ModelContractError(
            f"{where} has metadata key {key} holding a JSON {type(value).__name__}; expected an object",
            fix=REEXPORT_FIX,
        )
    return parse_record(kind, value, key, where)


def parse_record(
    kind: type,
    mapping: Any,
    key: str,
    where: str,
    error_cls: type[InpEdgeError] = ModelContractError,
    fix: str = REEXPORT_FIX,
) -> Any:
    """A frozen ``kind`` from the plain mapping stored under ``key`` (JSON-like values), strictly.

    A missing, unknown or mistyped field is an ``error_cls`` naming ``where`` and the field; so is a
    value the record itself refuses (an ``InpEdgeError`` from its ``__post_init__``). Export reads its
    checkpoint records through this too (with ``CheckpointError``).
    """
    if not isinstance(mapping, Mapping):
        raise error_cls(f"{where}: {key!r} holds a {type(mapping).__name__}, expected a mapping", fix=fix)
    known = {f.name: f for f in fields(kind)}
    unknown = sorted(str(name) for name in set(mapping) - set(known))
    required = [f.name for f in fields(kind) if f.default is MISSING and f.default_factory is MISSING]
    missing = [name for name in required if name not in mapping]
    if unknown or missing:
        parts = ([f"lacks {missing}"] if missing else []) + ([f"has unknown {unknown}"] if unknown else [])
        raise error_cls(
            f"{where}: {key!r} {' and '.join(parts)}; the fields of {kind.__name__} are {sorted(known)}",
            fix=fix,
        )
    values = {}
    for name, raw in mapping.items():
        value = _convert(known[name].type, raw)
        if value is _REFUSED:
            raise error_cls(f"{where}: {key}.{name}={raw!r} is not {known[name].type}", fix=fix)
        values[name] = value
    try:
        return kind(**values)
    except InpEdgeError as exc:  # a value the record refuses, e.g. a crop larger than the resize
        raise error_cls(f"{where}: {key!r} is invalid: {exc.message}", fix=fix) from None


_SIMPLE = {"int": int, "float": float, "str": str, "bool": bool}
_REFUSED = object()  # what _convert returns for a value that does not fit its annotation


def _convert(annotation: str, raw: Any) -> Any:
    """JSON-like value → the annotated type (string annotations, under ``from __future__``), or _REFUSED.

    Knows the simple types, ``X | None``, ``tuple[X, ...]``, ``tuple[X, Y, ...]`` of fixed length,
    ``Mapping[str, X]`` and ``Any``; a bool is never taken for a number, nor a string for a tuple.
    """
    if annotation.endswith(" | None"):
        return None if raw is None else _convert(annotation.removesuffix(" | None"), raw)
    if annotation == "Any":
        return raw
    if annotation in _SIMPLE:
        expected = _SIMPLE[annotation]
        ok = isinstance(raw, expected) or (expected is float and isinstance(raw, int))
        return expected(raw) if ok and (expected is bool or not isinstance(raw, bool)) else _REFUSED
    if annotation.startswith("tuple[") and annotation.endswith("]"):
        items = _split_arguments(annotation[len("tuple[") : -1])
        if not isinstance(raw, list | tuple):
            return _REFUSED
        kinds = [items[0]] * len(raw) if items[-1] == "..." else items
        if len(kinds) != len(raw):
            return _REFUSED
        converted = tuple(_convert(item, value) for item, value in zip(kinds, raw, strict=True))
        return _REFUSED if any(value is _REFUSED for value in converted) else converted
    if annotation.startswith("Mapping[str, ") and annotation.endswith("]"):
        if not isinstance(raw, Mapping) or not all(isinstance(name, str) for name in raw):
            return _REFUSED
        converted = {
            name: _convert(annotation[len("Mapping[str, ") : -1], value) for name, value in raw.items()
        }
        return _REFUSED if any(value is _REFUSED for value in converted.values()) else converted
    raise TypeError(f"record field type {annotation} is not one this reader knows")  # a bug here


def _split_arguments(text: str) -> list[str]:
    """``"tuple[int, ...], ..."`` → ``["tuple[int, ...]", "..."]`` (commas inside brackets kept)."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:index].strip())
            start = index + 1
    return [*parts, text[start:].strip()]


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)
