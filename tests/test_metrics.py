from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from export.knn import KnnBaseline, KnnSettings, nearest_distances
from export.metrics import ImageMetrics, image_metrics, pixel_metrics
from export.report import mean_result, write_report


def _sklearn_f1_max(labels: np.ndarray, scores: np.ndarray) -> float:
    precision, recall, _ = precision_recall_curve(labels, scores)
    f1 = 2 * precision * recall / (precision + recall + 1e-7)
    return float(np.max(f1[:-1]))  # the authors drop the appended (P=1, R=0) point


def _random_masks(rng: np.random.Generator, count: int, size: int) -> np.ndarray:
    masks = np.zeros((count, size, size), dtype=bool)
    for mask in masks[: count // 2 + 1]:
        for _ in range(rng.integers(1, 4)):
            row, col = rng.integers(0, size - 4, size=2)
            height, width = rng.integers(1, 5, size=2)
            mask[row : row + height, col : col + width] = True
    return masks


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_image_metrics_match_sklearn_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=300)
    scores = np.round(rng.random(300) + 0.3 * labels, 1)  # ~14 distinct values: many ties
    got = image_metrics(scores, labels)
    assert got.auroc == pytest.approx(roc_auc_score(labels, scores), abs=1e-9)
    assert got.ap == pytest.approx(average_precision_score(labels, scores), abs=1e-9)
    assert got.f1_max == pytest.approx(_sklearn_f1_max(labels, scores), abs=1e-9)


def test_pixel_metrics_match_sklearn_with_ties() -> None:
    rng = np.random.default_rng(3)
    masks = _random_masks(rng, 6, 32)
    maps = (np.round(rng.random(masks.shape) * 20) / 20 + 0.4 * masks).astype(np.float32)
    got = pixel_metrics(maps, masks)
    labels, scores = masks.ravel(), maps.ravel()
    assert got.auroc == pytest.approx(roc_auc_score(labels, scores), abs=1e-9)
    assert got.ap == pytest.approx(average_precision_score(labels, scores), abs=1e-9)
    assert got.f1_max == pytest.approx(_sklearn_f1_max(labels, scores), abs=1e-9)


def _brute_force_aupro(maps: np.ndarray, masks: np.ndarray, max_fpr: float) -> float:
    """Every distinct threshold, regions from scipy (8-connected), direct overlap per region."""
    structure = np.ones((3, 3), dtype=bool)
    regions = []
    for index, mask in enumerate(masks):
        labelled, count = ndimage.label(mask, structure=structure)
        regions += [(index, labelled == label) for label in range(1, count + 1)]
    points = [(0.0, 0.0)]
    for threshold in np.unique(maps)[::-1]:
        hit = maps >= threshold
        fpr = (hit & ~masks).sum() / (~masks).sum()
        pro = np.mean([(hit[index] & region).sum() / region.sum() for index, region in regions])
        points.append((fpr, pro))
    fprs, pros = np.array(points).T
    inside = fprs <= max_fpr
    cap_pro = np.interp(max_fpr, fprs, pros) if fprs[-1] > max_fpr else pros[inside][-1]
    return float(np.trapezoid(np.append(pros[inside], cap_pro), np.append(fprs[inside], max_fpr)) / max_fpr)


def test_aupro_matches_a_brute_force_threshold_sweep() -> None:
    rng = np.random.default_rng(4)
    masks = _random_masks(rng, 4, 16)
    maps = np.round(rng.random(masks.shape) + 0.5 * masks, 1)
    for max_fpr in (0.3, 0.05, 1.0):
        got = pixel_metrics(maps, masks, max_fpr_pro=max_fpr).aupro
        assert got == pytest.approx(_brute_force_aupro(maps, masks, max_fpr), abs=1e-12)


def test_aupro_of_a_perfect_map_is_one() -> None:
    masks = np.zeros((2, 16, 16), dtype=bool)
    masks[0, 2:5, 3:9] = True
    masks[1, 10:12, 10:12] = True
    assert pixel_metrics(masks.astype(np.float32), masks).aupro == pytest.approx(1.0, abs=1e-12)


def test_aupro_weights_regions_equally_and_interpolates_at_the_cap() -> None:
    masks = np.zeros((1, 20, 20), dtype=bool)
    masks[0, 1:3, 1:3] = True  # region A, 4 pixels
    masks[0, 10:15, 10:14] = True  # region B, 20 pixels
    maps = np.zeros((1, 20, 20), dtype=np.float32)
    maps[0, 1:3, 1:3] = 1.0  # A ranked first, B tied with every good pixel
    # Thresholds: score ≥ 1 → FPR 0, PRO = (1 + 0) / 2 = ½; score ≥ 0 → FPR 1, PRO 1.
    # Curve (0, 0) → (0, ½) → (1, 1); at FPR 0.3 the line gives PRO ½ + ½·0.3 = 0.65.
    # Area up to 0.3 = 0.3·(0.5 + 0.65)/2 = 0.1725; normalised by 0.3 → 0.575.
    # (Pixel-weighted, A would count only 4/24 of the defect area.)
    assert pixel_metrics(maps, masks).aupro == pytest.approx(0.575, abs=1e-12)
    maps[0][~masks[0]] = 0.5  # now B scores below every good pixel
    # Curve (0, ½) → (1, ½) → (1, 1): PRO stays ½ over the whole capped range.
    assert pixel_metrics(maps, masks).aupro == pytest.approx(0.5, abs=1e-12)


def test_aupro_ignores_everything_past_the_fpr_cap() -> None:
    masks = np.zeros((1, 10, 10), dtype=bool)
    masks[0, 0:2, 0:2] = True
    maps = np.zeros((1, 10, 10), dtype=np.float32)
    maps[0, 5:, :] = 1.0  # 50 good pixels of 96 (FPR 0.52) outrank the defect
    maps[0][masks[0]] = 0.5
    # Curve (0, 0) → (50/96, 0) → (50/96, 1) → (1, 1): nothing found below FPR 0.3.
    assert pixel_metrics(maps, masks).aupro == pytest.approx(0.0, abs=1e-12)
    assert pixel_metrics(maps, masks, max_fpr_pro=1.0).aupro == pytest.approx(46 / 96, abs=1e-12)


def test_aupro_joins_diagonal_neighbours_into_one_region() -> None:
    masks = np.zeros((1, 8, 8), dtype=bool)
    masks[0, 0:2, 0:2] = True  # 4 pixels
    masks[0, 2:5, 2:5] = True  # 9 pixels, touching the first square only at a corner
    maps = np.zeros((1, 8, 8), dtype=np.float32)
    maps[0, 0:2, 0:2] = 1.0
    # 8-connected: one region of 13 pixels, p = 4/13 of it found at FPR 0, so the curve is
    # (0, p) → (1, 1) and AUPRO = p + 0.15·(1 − p) = 0.85·p + 0.15. (4-connected: two regions,
    # one fully found: p = ½ would give 0.575.)
    assert pixel_metrics(maps, masks).aupro == pytest.approx(0.85 * 4 / 13 + 0.15, abs=1e-12)


def test_metrics_need_both_classes() -> None:
    with pytest.raises(ValueError, match="both good and defect"):
        image_metrics(np.array([0.1, 0.2]), np.array([1, 1]))
    with pytest.raises(ValueError, match="N×H×W"):
        pixel_metrics(np.zeros((2, 4, 4)), np.zeros((2, 4, 5), dtype=bool))


def test_metric_results_are_frozen_and_serialise() -> None:
    result = ImageMetrics(auroc=0.9, ap=0.8, f1_max=0.7)
    assert result.as_dict() == {"auroc": 0.9, "ap": 0.8, "f1_max": 0.7}
    with pytest.raises(AttributeError):
        result.auroc = 1.0  # type: ignore[misc]


def test_knn_training_tokens_have_zero_distance_without_coreset() -> None:
    train = torch.randn(3, 20, 32, generator=torch.Generator().manual_seed(0)) * 5
    knn = KnnBaseline(KnnSettings(coreset="none")).fit(train)
    assert knn.memory_bank.shape == (60, 32)
    assert torch.equal(knn.score(train[1:2]), torch.zeros(1, 20))


def test_knn_chunked_equals_unchunked_and_brute_force() -> None:
    generator = torch.Generator().manual_seed(1)
    bank, queries = torch.randn(500, 16, generator=generator), torch.randn(130, 16, generator=generator)
    whole = nearest_distances(queries, bank, query_chunk=10_000, bank_chunk=10_000)
    chunked = nearest_distances(queries, bank, query_chunk=7, bank_chunk=33)
    exact = torch.cdist(queries, bank, compute_mode="donot_use_mm_for_euclid_dist").min(dim=1).values
    assert torch.allclose(whole, chunked, atol=1e-6)
    assert torch.allclose(whole, exact, atol=1e-5)


@pytest.mark.parametrize("channels", [8, 256])  # 256 > 128: greedy runs on a random projection
def test_greedy_coreset_keeps_an_isolated_cluster(channels: int) -> None:
    generator = torch.Generator().manual_seed(2)
    bank = torch.randn(1000, channels, generator=generator)
    bank[:3] += 100.0  # three far-away tokens; a random 1 % sample would almost surely miss them
    knn = KnnBaseline(KnnSettings(coreset="greedy", coreset_ratio=0.01)).fit(bank[None])
    assert knn.memory_bank.shape == (10, channels)
    assert knn.score(bank[None]).max().item() < 50.0


def test_knn_errors_name_the_fix() -> None:
    with pytest.raises(RuntimeError, match="fit"):
        KnnBaseline().score(torch.zeros(1, 4, 8))
    knn = KnnBaseline(KnnSettings(coreset="random", coreset_ratio=0.5)).fit(torch.zeros(2, 4, 8))
    assert knn.memory_bank.shape == (4, 8)
    with pytest.raises(ValueError, match="B×N×8"):
        knn.score(torch.zeros(1, 4, 9))


def _result(value: float, pixel: bool = True) -> dict:
    image = {"auroc": value, "ap": value, "f1_max": value}
    return {"image": image, "pixel": {**image, "aupro": value} if pixel else None}


def _report() -> dict:
    categories = {
        "bottle": {"inp_former": _result(0.99), "knn": _result(0.95), "n_good": 20, "n_defect": 63},
        "screw": {"inp_former": _result(0.89), "knn": _result(float("nan")), "n_good": 41, "n_defect": 119},
    }
    return {
        "command": "inp-export evaluate --data x",
        "created_utc": "2026-01-31T12:00:00Z",
        "model": {"encoder": "efficientnet_lite0", "input_size_px": 256},
        "categories": categories,
        "mean": {"inp_former": mean_result(categories, "inp_former"), "knn": None},
        "timing_s": {"evaluate": 12.5},
    }


def test_report_writes_json_and_markdown_atomically(tmp_path: Path) -> None:
    json_path, md_path = write_report(_report(), tmp_path / "out", "eval")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["eval.json", "eval.md"]
    data = json.loads(json_path.read_text())
    assert data["mean"]["inp_former"]["image"]["auroc"] == pytest.approx(0.94)
    assert data["categories"]["screw"]["knn"]["image"]["auroc"] is None  # NaN → null
    text = md_path.read_text()
    assert "| bottle | 20 | 63 | 99.0 | 95.0 |" in text
    assert "| **mean** | 61 | 182 | 94.0 | – |" in text
    assert "`inp-export evaluate --data x`" in text


def test_report_missing_key_is_named(tmp_path: Path) -> None:
    report = _report()
    del report["categories"]["bottle"]["n_good"]
    with pytest.raises(ValueError, match=r"\['bottle'\] is missing 'n_good'"):
        write_report(report, tmp_path, "eval")
    assert list(tmp_path.iterdir()) == []


def test_mean_result_is_none_when_a_category_lacks_the_method() -> None:
    categories = {"a": {"inp_former": _result(0.5, pixel=False), "knn": None}}
    assert mean_result(categories, "knn") is None
    assert mean_result(categories, "inp_former") == {"image": _result(0.5)["image"], "pixel": None}
