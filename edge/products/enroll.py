"""Enroll a product from the model's inferences of a few good parts (no torch, no re-export).

1. **Memory**: the parts' patch features, thinned to ``max_memory_tokens`` rows (edge/products/memory.py).
2. **Good-part maps as a new good part would get them**: the model's map as it is; the memory map
   leave-one-out (each part against the memory rows of the *other* parts, so a part does not find
   itself), and with one part, leave-neighbourhood-out (each token against the part's rows more than
   one token away). At most ``max_stat_shots`` parts are used for this (time bound for large K).
3. **Normalisation** per source (``MapNorm``): centre = median pixel of those maps, scale = their mean
   top-1 % score minus the centre (so a typical good part scores 1 on each source).
4. **Flags**: a part whose score lies far above the others (robust z > ``outlier_z`` with median and
   1.4826 × MAD, K ≥ 3) is flagged before anything is kept; by default it is left out and the product
   is built from the rest, and the flag is reported either way.
5. **Initial thresholds** from the parts' scores with the calibration's tail rule (a robust normal fit,
   not the largest good score); recalibrate on the line for a better one (docs/products.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from edge.decision import Thresholds
from edge.model.contract_check import ModelInfo
from edge.model.detector import Inference
from edge.products.calibration import tail_rule
from edge.products.memory import (
    DEFAULT_MAX_TOKENS,
    Memory,
    build_memory,
    nearest_distances,
)
from edge.products.product import (
    DEFAULT_FUSION,
    CalibrationRecord,
    MapNorm,
    Product,
    ProductError,
    ScoreSummary,
)
from edge.products.scoring import SCORE_MEMORY_WEIGHT, MapShape, TokenMapper, blend, top_mean
from edge.publish.messages import iso_utc

# A flag needs a score above the median by outlier_z spreads, the spread at least this share of the
# median: good parts' scores in product units (about 1 each) vary by ~10 % between parts, and with
# a handful of parts the measured spread alone would flag an ordinary good one.
OUTLIER_SPREAD_FLOOR = 0.15
# The first threshold's spread is at least this share of the parts' median score: a handful of
# leave-one-out scores says little about the spread, and parts that were not enrolled score higher
# than the enrolled ones' leave-one-out scores (bottle + glass model, medians: cookie's training parts
# not enrolled 4-19 % above the enrolled ones, bottle's test good parts 8 %, glass's 32 %). Calibrate on the line for a
# threshold from the line's own parts.
ENROLL_MIN_RELATIVE_SPREAD = 0.15
STAT_PIXEL_STEP = 4  # every 4th pixel of each good map for the median (enough, and bounded)


@dataclass(frozen=True)
class EnrollSettings:
    fusion: str = DEFAULT_FUSION
    max_memory_tokens: int = DEFAULT_MAX_TOKENS
    max_stat_shots: int = 16
    outlier_z: float = 3.5
    drop_flagged: bool = True
    target_false_reject: float = 0.001
    seed: int = 0


@dataclass(frozen=True)
class Shot:
    """One good part's model outputs."""

    label: str  # file name or frame id, for the report
    anomaly_map: np.ndarray  # (H, W) float32
    patch_features: np.ndarray | None  # (N, C) float32

    @classmethod
    def of(cls, label: str, inference: Inference) -> Shot:
        return cls(label, inference.anomaly_map, inference.patch_features)


@dataclass(frozen=True)
class Flag:
    label: str
    score: float
    reason: str


@dataclass(frozen=True)
class Enrolled:
    product: Product
    shot_scores: tuple[float, ...]  # product scores of the kept parts scored (≤ max_stat_shots of them)
    flagged: tuple[Flag, ...]
    build_s: float
    shot_labels: tuple[str, ...] = ()  # the label of each of shot_scores


def find_outliers(scores: Sequence[float], z_limit: float) -> list[int]:
    """Indices of scores far above the others (robust z > z_limit); none with fewer than 3 (pure)."""
    values = np.asarray(scores, np.float64)
    if len(values) < 3:
        return []
    centre = float(np.median(values))
    floor = OUTLIER_SPREAD_FLOOR * abs(centre)
    spread = max(1.4826 * float(np.median(np.abs(values - centre))), floor, 1e-9)
    return [i for i, value in enumerate(values) if (value - centre) / spread > z_limit]


def enroll_product(
    name: str,
    shots: Sequence[Shot],
    info: ModelInfo,
    settings: EnrollSettings = EnrollSettings(),
    *,
    source: str = "",
    progress: Callable[[str], None] | None = None,
) -> Enrolled:
    """A product (not saved) from K good parts' inferences, with its flags."""
    started = time.perf_counter()
    if not shots:
        raise ProductError(f"product {name}: no good parts to enroll", fix="give at least one good part")
    missing = [s.label for s in shots if s.patch_features is None]
    if missing and settings.fusion != "inp":
        raise ProductError(
            f"model {info.model_id} gave no patch features for {', '.join(missing[:3])}",
            fix="use a model exported with the patch_features output (inp-export export), or --fusion inp",
        )
    product, by_source, scored = _build(name, shots, info, settings, source)
    labels = [shots[i].label for i in scored]
    flags = _flags(by_source, labels, settings.outlier_z)
    if flags and settings.drop_flagged and len(flags) < len(shots):
        if progress:
            progress(f"{len(flags)} part(s) flagged and left out: " + ", ".join(f.label for f in flags))
        left_out = {f.label for f in flags}
        kept = [shot for shot in shots if shot.label not in left_out]
        product, by_source, scored = _build(name, kept, info, settings, source)
        labels = [kept[i].label for i in scored]
    scores = by_source[settings.fusion]
    product = replace(product, enrollment={**product.enrollment, "flagged": [f.label for f in flags]})
    return Enrolled(product, tuple(scores), tuple(flags), time.perf_counter() - started, tuple(labels))


def _flags(by_source: dict[str, list[float]], labels: Sequence[str], z_limit: float) -> list[Flag]:
    """Parts whose score by any source (the model's map, the memory, the fusion) is far above the others."""
    flags: dict[str, Flag] = {}
    for source_name, scores in by_source.items():
        for i in find_outliers(scores, z_limit):
            median = float(np.median(scores))
            why = f"{source_name} score {scores[i]:.3f} far above the others (median {median:.3f})"
            flags.setdefault(labels[i], Flag(labels[i], scores[i], why))
    return [flags[label] for label in labels if label in flags]


def _build(
    name: str, shots: Sequence[Shot], info: ModelInfo, settings: EnrollSettings, source: str
) -> tuple[Product, dict[str, list[float]], list[int]]:
    """The product, each source's scores of the parts used for its statistics, and their indices."""
    top_ratio = info.meta.preprocess.top_ratio
    inp_maps = [s.anomaly_map for s in shots]
    memory: Memory | None = None
    memory_norm: MapNorm | None = None
    memory_maps: list[np.ndarray] = []
    picked = _spread_indices(len(shots), settings.max_stat_shots)
    if settings.fusion != "inp":
        features = [np.asarray(s.patch_features, np.float32) for s in shots]
        memory = build_memory(features, settings.max_memory_tokens, settings.seed)
        mapper = TokenMapper(MapShape.of(info, features[0].shape[0]))
        memory_maps = [
            mapper(held_out_distances(features[i], i, memory, mapper.shape.grid_hw)) for i in picked
        ]
        memory_norm = norm_of(memory_maps, top_ratio)
    inp_norm = norm_of([inp_maps[i] for i in picked], top_ratio)
    picked_maps = [inp_maps[i] for i in picked]
    by_source = _part_scores(settings.fusion, inp_norm, memory_norm, picked_maps, memory_maps, top_ratio)
    scores = by_source[settings.fusion]
    product = _product(name, info, settings, source, inp_norm, memory_norm, memory, scores, len(shots))
    return product, by_source, picked


def _product(
    name: str,
    info: ModelInfo,
    settings: EnrollSettings,
    source: str,
    inp_norm: MapNorm,
    memory_norm: MapNorm | None,
    memory: Memory | None,
    scores: list[float],
    shots: int,
) -> Product:
    rule = tail_rule(
        scores,
        target_false_reject=settings.target_false_reject,
        min_relative_spread=ENROLL_MIN_RELATIVE_SPREAD,
    )
    summary = ScoreSummary.of(scores)
    thresholds = Thresholds(
        image=rule.threshold,
        pixel=rule.threshold,
        center=summary.p50,
        source=f"enrollment: {rule.note}",
    )
    record = CalibrationRecord(
        at=iso_utc(time.time_ns()), rule="enrollment", threshold=rule.threshold, n_good=len(scores), n_bad=0,
        expected_false_reject=rule.expected_false_reject, expected_escape=None, note=rule.note,
    )  # fmt: skip
    enrollment: dict[str, Any] = {
        "shots": shots,
        "source": source,
        "flagged": [],
        "memory_tokens": 0 if memory is None else int(memory.features.shape[0]),
        "memory_dims": 0 if memory is None else int(memory.features.shape[1]),
        "max_memory_tokens": settings.max_memory_tokens,
        "enrolled_at": record.at,
    }
    return Product(
        name=name, model_sha256=info.sha256, model_id=info.model_id, fusion=settings.fusion,
        inp_norm=inp_norm, memory_norm=memory_norm, thresholds=thresholds, good_scores=summary,
        enrollment=enrollment, calibrations=(record,),
        memory=None if memory is None else memory.features,
    )  # fmt: skip


def held_out_distances(
    features: np.ndarray, shot: int, memory: Memory, grid_hw: tuple[int, int]
) -> np.ndarray:
    """A kept part's token distances to the memory without itself (see the module docstring)."""
    if np.any(memory.shot != shot):
        exclude = np.broadcast_to(memory.shot == shot, (len(features), len(memory.shot)))
    else:  # one part: only its rows more than one token away count
        width = grid_hw[1]
        rows, cols = np.divmod(np.arange(len(features)), width)
        mem_rows, mem_cols = np.divmod(memory.cell, width)
        exclude = (np.abs(rows[:, None] - mem_rows[None]) <= 1) & (
            np.abs(cols[:, None] - mem_cols[None]) <= 1
        )
    return nearest_distances(features, memory.features, exclude=exclude)


def norm_of(maps: Sequence[np.ndarray], top_ratio: float) -> MapNorm:
    """Centre = median good pixel, scale = median good score above it (a floor keeps it positive).

    Medians, so one odd part among the shots does not stretch the scale the others are judged by."""
    centre = float(np.median(np.concatenate([m.ravel()[::STAT_PIXEL_STEP] for m in maps])))
    typical = float(np.median([top_mean(m, top_ratio) for m in maps]))
    return MapNorm(center=centre, scale=max(typical - centre, 1e-6 * max(abs(centre), 1.0)))


def _part_scores(
    fusion: str,
    inp_norm: MapNorm,
    memory_norm: MapNorm | None,
    inp_maps: Sequence[np.ndarray],
    memory_maps: Sequence[np.ndarray],
    top_ratio: float,
) -> dict[str, list[float]]:
    """Each part's score by each source and by the product's fusion (as ProductScorer scores it)."""
    scores: dict[str, list[float]] = {"inp": [], "memory": [], "fused": []}
    for index, raw in enumerate(inp_maps):
        inp = inp_norm.apply(raw)
        scores["inp"].append(top_mean(inp, top_ratio))
        if fusion == "inp":
            continue
        assert memory_norm is not None  # a memory fusion has one
        memory = memory_norm.apply(memory_maps[index])
        scores["memory"].append(top_mean(memory, top_ratio))
        scores["fused"].append(top_mean(blend(inp, memory, SCORE_MEMORY_WEIGHT), top_ratio))
    return {name: values for name, values in scores.items() if values}


def _spread_indices(count: int, limit: int) -> list[int]:
    if count <= limit:
        return list(range(count))
    return sorted({int(round(i)) for i in np.linspace(0, count - 1, limit)})
