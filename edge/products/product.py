"""A product: how the model's outputs become this product's map, score and verdict (contract 2).

A product is a frozen value: the model it was enrolled with (sha256 and id), how its map is fused
(``inp``, ``memory`` or ``fused``) and normalised (``(map - center) / scale``), its thresholds in
those normalised units, the summary of its good scores and enrollment, its calibration history and
its few-shot memory (``(M, C)`` float32, stored beside the YAML as ``memory.npy``).

``to_yaml_dict`` / ``Product.from_yaml_dict`` are the YAML form (``product.yaml``, schema
``PRODUCT_SCHEMA``). Reading is strict: a missing, unknown or mistyped key is a ``ProductError``
naming the key and the file; a file written by a newer inp-edge is refused. edge/products/registry.py
owns the files and the versions.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from edge.decision import Thresholds
from edge.errors import InpEdgeError
from edge.products.yaml_fields import FieldError, Fields, plain

PRODUCT_SCHEMA = 1
FUSIONS = ("fused", "inp", "memory")
DEFAULT_FUSION = "fused"
MEMORY_FUSIONS = ("fused", "memory")  # fusions that score with the few-shot memory
CALIBRATION_RULES = ("enrollment", "quantile", "f1", "tail", "rollback", "manual")
MEMORY_FILE = "memory.npy"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
NAME_RULE = "1 to 64 characters from A-Z a-z 0-9 _ . -, starting with a letter or a digit"
_SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")


class ProductError(InpEdgeError):
    """A product is invalid, missing, broken on disk, or does not fit the model in use."""


def check_name(name: Any) -> str:
    """``name`` when it is a valid product name (also a safe folder name), else a ProductError."""
    if not isinstance(name, str) or NAME_PATTERN.fullmatch(name) is None:
        raise ProductError(f"product name {name!r} is not allowed", fix=f"use {NAME_RULE}, e.g. cookie-v2")
    return name


def utc_now_iso() -> str:
    """Wall-clock time now, ISO-8601 UTC to the second (``2026-05-04T10:11:12Z``)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class MapNorm:
    """``(map - center) / scale``: a product's unit for one map; ``scale`` > 0."""

    center: float
    scale: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.center) and math.isfinite(self.scale) and self.scale > 0):
            raise ProductError(
                f"map normalisation center {self.center!r}, scale {self.scale!r} is not valid",
                fix="the center must be finite and the scale finite and above 0 (re-enroll the product)",
            )

    def apply(self, values: np.ndarray) -> np.ndarray:
        return ((np.asarray(values, dtype=np.float32) - self.center) / self.scale).astype(np.float32)


@dataclass(frozen=True)
class ScoreSummary:
    """Statistics of good-part scores in product units (population std)."""

    n: int
    mean: float
    std: float
    min: float
    p50: float
    max: float

    @classmethod
    def of(cls, scores: Sequence[float]) -> ScoreSummary:
        values = np.asarray(scores, dtype=np.float64).ravel()
        if values.size == 0 or not np.all(np.isfinite(values)):
            raise ProductError(
                f"cannot summarise {values.size} good scores (none, or some not finite)",
                fix="give at least one good part with a finite score",
            )
        stats = (values.mean(), values.std(), values.min(), np.median(values), values.max())
        return cls(int(values.size), *(float(value) for value in stats))


@dataclass(frozen=True)
class CalibrationRecord:
    """One threshold decision in a product's history."""

    at: str  # ISO-8601 UTC wall time
    rule: str  # one of CALIBRATION_RULES
    threshold: float
    n_good: int
    n_bad: int
    expected_false_reject: float | None
    expected_escape: float | None
    note: str = ""

    def __post_init__(self) -> None:
        if self.rule not in CALIBRATION_RULES:
            raise ProductError(
                f"calibration rule {self.rule!r} is not known",
                fix=f"use one of {', '.join(CALIBRATION_RULES)}",
            )


@dataclass(frozen=True)
class Product:
    """One product (see the module docstring); ``version`` 0 = not saved by the registry yet."""

    name: str
    model_sha256: str
    model_id: str
    fusion: str
    inp_norm: MapNorm
    memory_norm: MapNorm | None
    thresholds: Thresholds
    good_scores: ScoreSummary
    enrollment: Mapping[str, Any]
    calibrations: tuple[CalibrationRecord, ...] = ()
    version: int = 0
    memory: np.ndarray | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        check_name(self.name)
        if _SHA256_PATTERN.fullmatch(self.model_sha256) is None:
            raise ProductError(
                f"product {self.name}: model_sha256 {self.model_sha256!r} is not a sha256",
                fix="pass the model file's sha256 (64 lowercase hex digits, ModelInfo.sha256)",
            )
        if self.fusion not in FUSIONS:
            raise ProductError(f"product {self.name}: fusion {self.fusion!r}", fix=f"use one of {FUSIONS}")
        if self.fusion in MEMORY_FUSIONS and self.memory_norm is None:
            raise ProductError(
                f"product {self.name}: fusion {self.fusion!r} needs the memory's normalisation (memory_norm)",
                fix='use fusion "inp", or enroll the product with a model that outputs patch_features',
            )
        _check_memory(self.name, self.memory)
        try:
            enrollment = plain(dict(self.enrollment), "enrollment")
        except FieldError as exc:
            raise ProductError(f"product {self.name}: {exc}", fix="pass plain values") from None
        object.__setattr__(self, "enrollment", enrollment)  # a plain dict: asdict / deepcopy work
        object.__setattr__(self, "calibrations", tuple(self.calibrations))

    def with_thresholds(self, thresholds: Thresholds, record: CalibrationRecord) -> Product:
        """The same product with new thresholds and ``record`` appended (not saved: version 0)."""
        return replace(self, thresholds=thresholds, calibrations=(*self.calibrations, record), version=0)

    def label(self) -> str:
        """``cookie v3`` (``cookie (not saved)`` before the registry saved it)."""
        return f"{self.name} v{self.version}" if self.version else f"{self.name} (not saved)"

    def to_yaml_dict(self, *, saved_at: str = "", note: str = "") -> dict[str, Any]:
        """Plain values for ``yaml.safe_dump`` (the registry passes when and why it saved)."""
        memory = None
        if self.memory is not None:
            memory = {"file": MEMORY_FILE, "shape": list(self.memory.shape), "dtype": "float32"}
        document = {
            "schema": PRODUCT_SCHEMA,
            "name": self.name,
            "version": self.version,
            "saved_at": saved_at,
            "note": note,
            "model_id": self.model_id,
            "model_sha256": self.model_sha256,
            "fusion": self.fusion,
            "inp_norm": asdict(self.inp_norm),
            "memory_norm": None if self.memory_norm is None else asdict(self.memory_norm),
            "thresholds": asdict(self.thresholds),
            "good_scores": asdict(self.good_scores),
            "enrollment": dict(self.enrollment),
            "memory": memory,
            "calibrations": [asdict(record) for record in self.calibrations],
        }
        return plain(document, "product")  # numpy numbers in the values become plain ones

    @classmethod
    def from_yaml_dict(cls, data: Any, path: str | Path) -> Product:
        """The product described by ``data`` (parsed ``product.yaml`` at ``path``), without its memory."""
        name = data.get("name") if isinstance(data, Mapping) else None
        fix = (
            "product.yaml is written by inp-edge: restore it from a backup, or make another version current "
            f"with `inp-edge products rollback {name if isinstance(name, str) else 'NAME'} --to N`"
        )
        from edge.products.product_yaml import read_product  # the strict reader, beside this value

        try:
            return read_product(Fields(data), path)
        except FieldError as exc:
            raise ProductError(f"{path}: {exc.key_path} {exc.problem}", fix=fix) from None
        except ProductError as exc:
            raise ProductError(f"{path}: {exc.message}", fix=exc.fix) from None


def check_model(product: Product, model_sha256: str, model_id: str | None = None) -> None:
    """Refuse ``product`` for a model other than the one it was enrolled with (sha256 compared)."""
    if model_sha256 == product.model_sha256:
        return
    in_use = f"model {model_id}" if model_id else "another model"
    raise ProductError(
        f"product {product.label()} was enrolled with model {product.model_id} "
        f"(sha256 {product.model_sha256[:12]}), but the station runs {in_use} (sha256 {model_sha256[:12]})",
        fix=f"re-enroll it for this model: inp-edge enroll --product {product.name} --model MODEL ..., "
        "or run the model it was enrolled with",
    )


def stored_memory_shape(data: Mapping[str, Any]) -> tuple[int, int] | None:
    """The memory shape a ``product.yaml`` (already read by ``from_yaml_dict``) declares, or None."""
    memory = data.get("memory")
    return None if memory is None else (memory["shape"][0], memory["shape"][1])


def _check_memory(name: str, memory: np.ndarray | None) -> None:
    if memory is None:
        return
    array = isinstance(memory, np.ndarray)
    if not (array and memory.ndim == 2 and memory.dtype == np.float32 and memory.size > 0):
        got = f"{memory.dtype} {memory.shape}" if array else type(memory).__name__
        raise ProductError(
            f"product {name}: memory must be a non-empty (tokens, channels) float32 array, got {got}",
            fix="pass the patch features as np.float32 with shape (M, C)",
        )
