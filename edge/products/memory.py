"""A product's few-shot memory: good parts' patch features, bounded, and nearest-neighbour distances.

The model's optional ``patch_features`` output gives one C-channel feature per token of its grid
(row-major). A product's memory is the features of its good parts, thinned to at most
``max_tokens`` rows by greedy k-centre selection (each new row is the one farthest from those kept,
measured on a fixed random projection to ``PROJECTION_DIM`` channels), so memory and scoring time
stay bounded whatever K: scoring one frame costs N × M × C multiply-adds for N tokens, M ≤
``max_tokens`` memory rows and C channels.

All C channels are kept: projecting them onto 32 principal components cut the multiply-adds 7× but
dropped glass's memory-map pixel AUROC from 83 to 72 (docs/benchmarks.md, "Products"); the INT8
distance graph (edge/products/distance_graph.py) makes the full channels fast enough instead.

Distances are squared-norm expansions (``|q|² - 2 q·m + |m|²``), with ``-2 m`` and ``|m|²`` folded
into one (C + 1)-column matrix so one matrix product and one ``min`` pass give them (the element-wise
passes, not the product, dominate at these sizes); in blocks of ``BLOCK_ROWS`` query rows, clipped at
0 before the square root (rounding can make an exact match read a tiny negative).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_MAX_TOKENS = 2048  # memory rows kept; docs/products.md gives the measured cost and quality
PROJECTION_DIM = 64  # greedy selection compares rows on a random projection this wide
BLOCK_ROWS = 4096  # query rows per distance block (a block ≤ BLOCK_ROWS × M float32)


@dataclass(frozen=True)
class Memory:
    """The kept rows and, for enrollment's leave-one-out, where each came from."""

    features: np.ndarray  # (M, C) float32
    shot: np.ndarray  # (M,) int: which good part each row came from
    cell: np.ndarray  # (M,) int: its token index (row-major) in that part's grid


def build_memory(
    shots: Sequence[np.ndarray],
    max_tokens: int = DEFAULT_MAX_TOKENS,
    seed: int = 0,
) -> Memory:
    """The memory of good parts' (N, C) patch features, at most ``max_tokens`` rows."""
    if not shots:
        raise ValueError("build_memory needs the patch features of at least one good part")
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    features = np.concatenate([np.asarray(s, np.float32) for s in shots], axis=0)
    shot = np.concatenate([np.full(len(s), i) for i, s in enumerate(shots)])
    cell = np.concatenate([np.arange(len(s)) for s in shots])
    if len(features) > max_tokens:
        keep = greedy_k_centre(features, max_tokens, seed)
        features, shot, cell = features[keep], shot[keep], cell[keep]
    return Memory(np.ascontiguousarray(features), shot, cell)


def greedy_k_centre(rows: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """Indices of ``size`` rows, each the farthest (on a random projection) from those chosen before."""
    rng = np.random.default_rng(seed)
    points = rows
    if rows.shape[1] > PROJECTION_DIM:
        projection = rng.standard_normal((rows.shape[1], PROJECTION_DIM)).astype(np.float32)
        points = rows @ (projection / np.sqrt(PROJECTION_DIM))
    norms = np.einsum("ij,ij->i", points, points)
    chosen = np.empty(size, dtype=np.int64)
    chosen[0] = int(rng.integers(len(rows)))
    nearest = np.full(len(rows), np.inf, dtype=np.float32)
    for step in range(size):
        if step:
            chosen[step] = int(np.argmax(nearest))
        centre = points[chosen[step]]
        np.minimum(nearest, norms - 2.0 * (points @ centre) + norms[chosen[step]], out=nearest)
    return chosen


def squared_norms(rows: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", rows, rows)


def distance_matrix(memory: np.ndarray) -> np.ndarray:
    """(D + 1, M): ``-2 m`` over ``|m|²``, so ``[q, 1] @ it`` is ``|q - m|² - |q|²`` in one product."""
    memory = np.asarray(memory, np.float32)
    return np.ascontiguousarray(np.vstack([-2.0 * memory.T, squared_norms(memory)[None, :]]))


def nearest_distances(
    queries: np.ndarray,
    memory: np.ndarray,
    matrix: np.ndarray | None = None,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """(Q,) L2 distance of each query row to its nearest memory row.

    ``matrix``: ``distance_matrix(memory)``, computed once per memory by a caller that scores many
    parts. ``exclude``: optional (Q, M) bool, True where a memory row must not count for that query
    (the query's own part during enrollment's leave-one-out).
    """
    queries = np.asarray(queries, np.float32)
    matrix = distance_matrix(memory) if matrix is None else matrix
    result = np.empty(len(queries), dtype=np.float32)
    extended = np.empty((min(BLOCK_ROWS, len(queries)), matrix.shape[0]), np.float32)
    for start in range(0, len(queries), BLOCK_ROWS):
        block = queries[start : start + BLOCK_ROWS]
        rows = extended[: len(block)]
        rows[:, :-1], rows[:, -1] = block, 1.0
        squared = rows @ matrix
        if exclude is not None:
            squared[exclude[start : start + BLOCK_ROWS]] = np.inf
        best = squared.min(axis=1) + squared_norms(block)
        result[start : start + len(block)] = np.sqrt(np.maximum(best, 0.0))
    return result
