"""Few-shot memory, product maps and enrollment (edge/products/memory.py, scoring.py, enroll.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from edge.camera.frame import Frame
from edge.model.detector import Detector, DetectorSettings
from edge.model.session import open_session
from edge.products.distance_graph import MemoryDistances
from edge.products.enroll import EnrollSettings, Shot, enroll_product, find_outliers, held_out_distances
from edge.products.memory import build_memory, greedy_k_centre, nearest_distances
from edge.products.product import ProductError
from edge.products.scoring import (
    MAP_INP_GAIN,
    MapShape,
    ProductScorer,
    TokenMapper,
    blend,
    gate,
    product_map_of,
    top_mean,
)
from export.model.postprocess import MapSettings, smooth_maps
from tests.tiny_models import CPU_ONLY, save_model


@pytest.mark.parametrize(("input_px", "grid", "map_px"), [(64, 8, 64), (56, 4, 64), (32, 32, 32)])
def test_the_memory_map_is_made_like_the_graphs_own_map(input_px: int, grid: int, map_px: int) -> None:
    """numpy upsampling + smoothing == the export graph's torch code, so the two maps line up."""
    values = np.random.default_rng(0).random(grid * grid, dtype=np.float32)
    shape = MapShape((input_px, input_px), (grid, grid), map_px, 4.0, 0.01)
    ours = TokenMapper(shape)(values)
    settings = MapSettings(map_size_px=map_px, gaussian_sigma=4.0)
    theirs = smooth_maps(torch.from_numpy(values).reshape(1, 1, grid, grid), (input_px, input_px), settings)
    if map_px != input_px:
        theirs = torch.nn.functional.interpolate(theirs, size=(input_px, input_px), mode="bilinear")
    np.testing.assert_allclose(ours, theirs[0, 0].numpy(), atol=1e-5)


def test_nearest_distances_are_exact_and_exclusions_are_honoured() -> None:
    rng = np.random.default_rng(1)
    queries, memory = rng.standard_normal((50, 7), np.float32), rng.standard_normal((30, 7), np.float32)
    brute = np.sqrt(((queries[:, None] - memory[None]) ** 2).sum(-1))
    np.testing.assert_allclose(nearest_distances(queries, memory), brute.min(1), rtol=1e-4, atol=1e-4)
    exclude = np.zeros((50, 30), bool)
    exclude[:, brute.argmin(1)] = True  # every query's nearest row is out of bounds
    masked = np.where(exclude, np.inf, brute).min(1)
    np.testing.assert_allclose(nearest_distances(queries, memory, exclude=exclude), masked, rtol=1e-4)
    assert nearest_distances(memory[:5], memory).max() < 1e-3  # a row finds itself


def test_the_memory_is_bounded_and_keeps_one_row_of_every_cluster() -> None:
    rng = np.random.default_rng(2)
    centres = np.array([[0, 0], [50, 0], [0, 50]], np.float32)
    shots = [centres[i] + rng.standard_normal((40, 2)).astype(np.float32) for i in range(3)]
    memory = build_memory(shots, max_tokens=3)
    assert memory.features.shape == (3, 2)
    assert sorted(memory.shot.tolist()) == [0, 1, 2]  # farthest-first reaches every cluster
    assert len(build_memory(shots, max_tokens=1000).features) == 120  # under the bound: everything kept
    assert len(set(greedy_k_centre(np.concatenate(shots), 60).tolist())) == 60  # no row chosen twice


@pytest.mark.parametrize(
    ("scores", "flagged"),
    [
        ([1.0, 1.1, 0.9, 1.05], []),
        ([1.0, 1.1, 0.9, 4.0], [3]),
        ([1.0, 1.0, 1.0, 1.6], [3]),  # no spread at all: the floor (15 % of the median) still flags it
        ([1.0, 1.0, 1.0, 1.4], []),  # within the floor: an ordinary good part
        ([1.0, 9.0], []),  # two parts: no majority to compare with
        ([4.0, 1.0, 1.1, 0.9, -2.0], [0]),  # only scores ABOVE the others are suspicious
    ],
)
def test_a_part_far_above_the_others_is_flagged(scores: list[float], flagged: list[int]) -> None:
    assert find_outliers(scores, 3.5) == flagged


def _tiny(tmp_path: Path):  # noqa: ANN202
    loaded = open_session(save_model(tmp_path, height=16, width=16, patch_features=True), CPU_ONLY)
    return Detector(loaded, DetectorSettings(want_features=True)), loaded.info


def _part(seed: int, defect: bool = False) -> np.ndarray:
    """A textured good part (noise around grey); a defect is a bright red square."""
    image = np.clip(128 + np.random.default_rng(seed).normal(0, 12, (16, 16, 3)), 0, 255).astype(np.uint8)
    if defect:
        image[4:8, 9:13] = (255, 0, 0)
    return image


def _shots(detector: Detector, seeds: range) -> list[Shot]:
    return [Shot.of(f"part-{s}", detector.infer(Frame(s, 0, 0, _part(s), {}))) for s in seeds]


def test_enrollment_gives_typical_good_parts_a_score_near_one_and_finds_a_defect(tmp_path: Path) -> None:
    detector, info = _tiny(tmp_path)
    enrolled = enroll_product("tiny", _shots(detector, range(4)), info, EnrollSettings(max_memory_tokens=300))
    product = enrolled.product
    assert product.memory is not None and product.memory.shape == (300, 3)
    assert product.enrollment["shots"] == 4 and product.model_sha256 == info.sha256
    assert np.mean(enrolled.shot_scores) == pytest.approx(1.0, abs=0.5)
    assert sorted(enrolled.shot_labels) == [f"part-{s}" for s in range(4)]
    scorer = ProductScorer(product, info)
    good = scorer.score(detector.infer(Frame(10, 0, 0, _part(10), {})))
    bad = scorer.score(detector.infer(Frame(11, 0, 0, _part(11, defect=True), {})))
    assert bad.score > product.thresholds.image >= good.score
    peak = np.unravel_index(np.argmax(bad.product_map), bad.product_map.shape)
    assert 3 <= peak[0] <= 8 and 8 <= peak[1] <= 13  # where the defect is
    exact = ProductScorer(product, info, exact=True).score(
        detector.infer(Frame(11, 0, 0, _part(11, defect=True), {}))
    )
    assert exact.score == pytest.approx(bad.score, rel=0.05)  # the INT8 distances agree with float32


def test_the_int8_distance_graph_agrees_with_float32_numpy() -> None:
    rng = np.random.default_rng(5)
    memory = rng.standard_normal((700, 48)).astype(np.float32)
    queries = memory[:300] + 0.3 * rng.standard_normal((300, 48)).astype(np.float32)
    exact = nearest_distances(queries, memory)
    approx = MemoryDistances(memory)(queries)
    # random Gaussian rows are a hard case (all distances alike, large terms cancel); on real patch
    # features of cookie the error was 0.2 % mean, 1.1 % max (docs/products.md)
    assert np.mean(np.abs(approx - exact)) / np.mean(exact) < 0.02
    assert np.max(np.abs(approx - exact)) / np.mean(exact) < 0.08


@pytest.mark.parametrize(("weight", "expected"), [(0.0, 1.0), (1.0, 3.0), (0.5, 2.0), (0.8, 2.6)])
def test_blend_weighs_the_memory_map(weight: float, expected: float) -> None:
    inp, memory = np.ones((2, 2), np.float32), np.full((2, 2), 3.0, np.float32)
    np.testing.assert_allclose(blend(inp, memory, weight), expected, rtol=1e-6)


def test_a_part_wide_shift_of_the_model_map_leaves_the_fused_map_to_the_memory() -> None:
    memory = np.random.default_rng(0).normal(size=(16, 16)).astype(np.float32)
    for level in (-2.0, 0.0, 5.0):
        np.testing.assert_array_equal(gate(np.full((16, 16), level, np.float32), memory), memory)


@pytest.mark.parametrize(
    ("inp_at_pixel", "memory_at_pixel", "expected"),
    [
        (3.0, 2.0, 2.0 + MAP_INP_GAIN * 2.0 * 2.0),  # both see it: raised (inp 2 above its level 1)
        (3.0, -0.5, -0.5),  # the memory finds the pixel ordinary: unchanged
        (0.0, 2.0, 2.0),  # the model's map below its level: unchanged
        (1.0, 4.0, 4.0),  # at its level: unchanged
    ],
)
def test_the_fused_map_raises_the_memory_where_the_model_map_stands_above_its_level(
    inp_at_pixel: float, memory_at_pixel: float, expected: float
) -> None:
    inp, memory = np.ones((16, 16), np.float32), np.full((16, 16), 0.5, np.float32)
    inp[5, 7], memory[5, 7] = inp_at_pixel, memory_at_pixel
    fused = gate(inp, memory)
    assert fused[5, 7] == pytest.approx(expected)
    assert np.array_equal(np.delete(fused.ravel(), 5 * 16 + 7), np.delete(memory.ravel(), 5 * 16 + 7))


def test_each_fusion_takes_its_map() -> None:
    inp, memory = np.full((8, 8), 2.0, np.float32), np.full((8, 8), 3.0, np.float32)
    inp[2, 2] = 6.0
    assert product_map_of("inp", inp, memory) is inp and product_map_of("memory", inp, memory) is memory
    assert product_map_of("fused", inp, memory)[2, 2] == pytest.approx(3.0 + MAP_INP_GAIN * 4.0 * 3.0)


def test_a_defective_part_among_the_shots_is_flagged_and_left_out(tmp_path: Path) -> None:
    detector, info = _tiny(tmp_path)
    shots = _shots(detector, range(5))
    shots[2] = Shot.of("odd", detector.infer(Frame(2, 0, 0, _part(2, defect=True), {})))
    enrolled = enroll_product("tiny", shots, info)
    assert [flag.label for flag in enrolled.flagged] == ["odd"]
    assert enrolled.product.enrollment["shots"] == 4 and enrolled.product.enrollment["flagged"] == ["odd"]
    kept = enroll_product("tiny", shots, info, EnrollSettings(drop_flagged=False))
    assert kept.product.enrollment["shots"] == 5 and [f.label for f in kept.flagged] == ["odd"]


def test_one_part_is_scored_against_its_own_rows_away_from_each_token() -> None:
    features = np.arange(16, dtype=np.float32)[:, None].repeat(2, axis=1)  # 4×4 grid, token value = index
    memory = build_memory([features])
    distances = held_out_distances(features, 0, memory, (4, 4))
    # token 5 (row 1, col 1): its 3×3 neighbourhood is out, the nearest left is token 3 or 7 (2 away)
    assert distances[5] == pytest.approx(np.sqrt(2) * 2)
    assert distances.min() > 0  # no token finds itself


def test_a_fusion_that_needs_memory_refuses_a_product_without_one(tmp_path: Path) -> None:
    detector, info = _tiny(tmp_path)
    product = enroll_product("tiny", _shots(detector, range(2)), info, EnrollSettings(fusion="inp")).product
    assert product.memory is None
    with pytest.raises(ProductError, match="memory"):
        ProductScorer(replace(product, fusion="fused"), info)


def test_top_mean_is_the_graphs_image_score() -> None:
    values = np.arange(1000, dtype=np.float32)
    assert top_mean(values, 0.01) == pytest.approx(np.mean(values[-10:]))
    assert top_mean(values, 0.0001) == 999.0  # fewer than one value: the max
