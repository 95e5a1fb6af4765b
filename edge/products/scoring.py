"""A product's map and score for one inference: the model's map, the memory's map, their fusion.

- ``inp`` map: the model's ``anomaly_map``, normalised by the product (``MapNorm``).
- ``memory`` map: each patch feature's distance to its nearest memory row, laid out on the token
  grid and brought to the model's map exactly the way the graph brings its own residuals
  (``token_map``: align-corners bilinear upsampling to the input size, half-pixel resize to the
  map size when it differs, 5×5 Gaussian with zero padding, back to the input size), so the two maps
  line up pixel for pixel; then normalised by the product.
- ``fused`` map: the memory map, raised where the model's map stands above its own level on this
  part (``gate``): where both maps see something, the fused map sees more than either.

The product score is the mean of the top ``top_ratio`` of the equal blend of the two normalised
maps, as the model's own ``pred_score`` is of its map. Normalising puts a typical good pixel at 0
and a typical good part's score at 1 for each source, so neither dominates the mean by its units.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from edge.model.contract_check import ModelInfo
from edge.model.detector import Inference
from edge.products.distance_graph import MemoryDistances
from edge.products.memory import distance_matrix, nearest_distances
from edge.products.product import Product, ProductError

GAUSSIAN_KSIZE = 5  # the graph's smoothing kernel (INP_FORMER.md §8: 5×5, σ from the metadata)
SCORING_BLAS_THREADS = 1
# The distance graph's threads: the inspect thread runs the model and then the scoring, one after the
# other, so the model's cores are free while it scores; on cookie's real features the 2048-row memory
# took 1.6 ms on two threads against 2.8 ms on one (docs/benchmarks.md, "Products").
DISTANCE_THREADS = 2


def limit_blas_threads(threads: int = SCORING_BLAS_THREADS) -> None:
    """numpy's BLAS to ``threads`` threads in this process (threadpoolctl).

    The memory's matrix product is small (about 70 M multiply-adds) and runs on the inspect thread
    beside onnxruntime's own threads; OpenBLAS's pool of one thread per core then fights them:
    measured on the 2-core test machine, the median scoring time fell from 10 ms to 1.3 ms with one
    BLAS thread while the model's time stayed the same (docs/products.md).
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads, user_api="blas")


@dataclass(frozen=True)
class MapShape:
    """How token distances become a map the size of the model's ``anomaly_map``."""

    input_hw: tuple[int, int]
    grid_hw: tuple[int, int]
    map_size_px: int
    gaussian_sigma: float
    top_ratio: float

    @classmethod
    def of(cls, info: ModelInfo, n_tokens: int) -> MapShape:
        height, width = info.input_hw
        grid_h = int(round(np.sqrt(n_tokens * height / width)))
        if grid_h < 1 or n_tokens % grid_h:
            raise ProductError(
                f"model {info.model_id}: {n_tokens} patch features do not fill a grid of its "
                f"{height}x{width} input",
                fix="re-export the model with `inp-export export` (its patch_features must be row-major tokens)",
            )
        p = info.meta.preprocess
        return cls(
            (height, width), (grid_h, n_tokens // grid_h), p.map_size_px, p.gaussian_sigma, p.top_ratio
        )


def align_corners_matrix(size_out: int, size_in: int) -> np.ndarray:
    """(out, in) bilinear weights with corners aligned (torch ``align_corners=True``)."""
    weights = np.zeros((size_out, size_in), np.float32)
    if size_in == 1 or size_out == 1:
        weights[:, 0] = 1.0
        return weights
    position = np.arange(size_out) * ((size_in - 1) / (size_out - 1))
    low = np.minimum(np.floor(position).astype(int), size_in - 2)
    frac = (position - low).astype(np.float32)
    weights[np.arange(size_out), low] = 1.0 - frac
    weights[np.arange(size_out), low + 1] += frac
    return weights


def gaussian_kernel(ksize: int, sigma: float) -> np.ndarray:
    offsets = np.arange(ksize, dtype=np.float64) - ksize // 2
    profile = np.exp(-(offsets**2) / (2.0 * sigma**2))
    kernel = np.outer(profile, profile)
    return (kernel / kernel.sum()).astype(np.float32)


class TokenMapper:
    """(N,) token values → (H, W) map, the graph's way (matrices built once per model)."""

    def __init__(self, shape: MapShape) -> None:
        self.shape = shape
        (height, width), (grid_h, grid_w) = shape.input_hw, shape.grid_hw
        self._rows = align_corners_matrix(height, grid_h)
        self._cols = align_corners_matrix(width, grid_w).T.copy()
        self._kernel = gaussian_kernel(GAUSSIAN_KSIZE, shape.gaussian_sigma)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        s = self.shape
        grid = np.asarray(values, np.float32).reshape(s.grid_hw)
        full = self._rows @ grid @ self._cols
        size = s.map_size_px
        if full.shape != (size, size):
            full = cv2.resize(full, (size, size), interpolation=cv2.INTER_LINEAR)
        smooth = cv2.filter2D(full, -1, self._kernel, borderType=cv2.BORDER_CONSTANT)
        if smooth.shape != s.input_hw:
            smooth = cv2.resize(smooth, (s.input_hw[1], s.input_hw[0]), interpolation=cv2.INTER_LINEAR)
        return smooth


def top_mean(values: np.ndarray, ratio: float) -> float:
    """Mean of the top ``int(size·ratio)`` values (the max when that is 0), as the graph scores a map."""
    flat = np.asarray(values).ravel()
    count = int(flat.size * ratio)
    if count == 0:
        return float(flat.max())
    return float(np.partition(flat, flat.size - count)[flat.size - count :].mean())


# The memory's weight in a product's score, per fusion. "fused" weighs the two maps equally for the
# part's score (what decides pass / fail): the equal blend measured best for image AUROC.
SCORE_MEMORY_WEIGHT = 0.5
SCORE_WEIGHTS = {"inp": 0.0, "memory": 1.0, "fused": SCORE_MEMORY_WEIGHT}
# The fused map (where the defect regions come from): the memory map, raised by this much per unit of
# the model map's excess over its own median on the part (``gate``): the largest gain tried whose map is
# at or above the memory alone on every product (``inp-export bench-products --map-sweep``;
# docs/benchmarks.md, "Products").
MAP_INP_GAIN = 0.2
LEVEL_STEP_PX = 4  # the model map's level on the part: the median of every 4th pixel (a smooth map)


def blend(inp: np.ndarray, memory: np.ndarray, memory_weight: float) -> np.ndarray:
    """``(1 − w) · inp + w · memory`` of two normalised maps (either one alone at w = 0 or 1)."""
    if memory_weight == 0.0:
        return inp
    if memory_weight == 1.0:
        return memory
    return inp * np.float32(1.0 - memory_weight) + memory * np.float32(memory_weight)


def gate(inp: np.ndarray, memory: np.ndarray, gain: float = MAP_INP_GAIN) -> np.ndarray:
    """``memory + gain · max(inp − level, 0) · max(memory, 0)`` of two normalised (H, W) maps.

    ``level`` is the model map's median on this part, so a part-wide shift of the model's map (lighting,
    or a defect that shifts the whole part) adds nothing; only where the model's map rises above its own
    level *and* the memory sees the pixel as unusual does the product map rise above the memory's.
    """
    level = np.float32(np.median(inp[::LEVEL_STEP_PX, ::LEVEL_STEP_PX]))
    excess = np.maximum(inp - level, np.float32(0.0))
    excess *= np.maximum(memory, np.float32(0.0))
    excess *= np.float32(gain)
    return memory + excess


def product_map_of(fusion: str, inp: np.ndarray, memory: np.ndarray) -> np.ndarray:
    """The map a fusion gives (the defect regions and the overlay come from it)."""
    if fusion == "inp":
        return inp
    if fusion == "memory":
        return memory
    return gate(inp, memory)


@dataclass(frozen=True)
class Scored:
    product_map: np.ndarray  # (H, W) float32 in product units: the map the defect regions come from
    score: float  # the part's score: top-ratio mean of the score blend of the two maps
    scoring_ms: float


class ProductScorer:
    """Scores inferences for one product (built once when the product becomes active).

    Memory distances go through the INT8 graph of edge/products/distance_graph.py (``exact=False``,
    the default: 3× faster than float32 numpy here) or numpy in float32 (``exact=True``).
    """

    def __init__(self, product: Product, info: ModelInfo, *, exact: bool = False) -> None:
        limit_blas_threads()
        self.product = product
        self.needs_features = product.fusion != "inp"
        self._score_weight = SCORE_WEIGHTS[product.fusion]
        self._top_ratio = info.meta.preprocess.top_ratio
        self._info = info
        self._mapper: TokenMapper | None = None
        self._distances = None
        if self.needs_features:
            if product.memory is None or product.memory_norm is None:
                raise ProductError(
                    f"product {product.label()}: fusion {product.fusion!r} needs a few-shot memory and it has none",
                    fix=f"re-enroll it: inp-edge enroll --product {product.name} ...",
                )
            self._distances = (
                _exact(product.memory) if exact else MemoryDistances(product.memory, DISTANCE_THREADS)
            )

    def memory_map(self, features: np.ndarray) -> np.ndarray:
        """The (H, W) raw nearest-neighbour distance map of one part's (N, C) patch features."""
        memory = self.product.memory
        assert memory is not None and self._distances is not None
        channels = memory.shape[1]
        if features.ndim != 2 or features.shape[1] != channels:
            raise ProductError(
                f"product {self.product.label()}: the model gives patch features of shape {features.shape}, "
                f"its memory takes {channels} channels",
                fix=f"re-enroll it for this model: inp-edge enroll --product {self.product.name} ...",
            )
        if self._mapper is None:
            self._mapper = TokenMapper(MapShape.of(self._info, features.shape[0]))
        return self._mapper(self._distances(features))

    def score(self, inference: Inference) -> Scored:
        return self.score_maps(inference.anomaly_map, inference.patch_features)

    def score_maps(self, anomaly_map: np.ndarray, patch_features: np.ndarray | None) -> Scored:
        """The product's map and score from the model's (H, W) map and (N, C) patch features."""
        started_ns = time.perf_counter_ns()
        inp, memory = self.normalised_maps(anomaly_map, patch_features)
        if memory is None:
            score = top_mean(inp, self._top_ratio)
            return Scored(inp, score, (time.perf_counter_ns() - started_ns) / 1e6)
        score = top_mean(blend(inp, memory, self._score_weight), self._top_ratio)
        product_map = product_map_of(self.product.fusion, inp, memory)
        return Scored(product_map, score, (time.perf_counter_ns() - started_ns) / 1e6)

    def normalised_maps(
        self, anomaly_map: np.ndarray, patch_features: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The INP map and the memory map (None for fusion "inp") in the product's units."""
        p = self.product
        inp = p.inp_norm.apply(anomaly_map)
        if not self.needs_features:
            return inp, None
        if patch_features is None:
            raise ProductError(
                f"product {p.label()} scores with its memory but the inference has no patch features",
                fix="use a model exported with the patch_features output (inp-export export)",
            )
        assert p.memory_norm is not None
        return inp, p.memory_norm.apply(self.memory_map(patch_features))


def _exact(memory: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    matrix = distance_matrix(memory)
    return lambda queries: nearest_distances(queries, memory, matrix)
