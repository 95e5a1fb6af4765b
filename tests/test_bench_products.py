"""`inp-export bench-products`: enrollment and product scoring measured on an MVTec-layout category."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from export.cli import main
from export.map_sweep import MAP_FORMS
from tests.products_cli_support import good_part, model_file, scratched_part, write_images


def _category(root: Path) -> Path:
    """A small MVTec-layout category: 6 good training parts, 4 good and 4 scratched test parts."""
    rng = np.random.default_rng(3)
    folder = root / "biscuit"
    write_images(folder / "train" / "good", [good_part(rng) for _ in range(6)])
    write_images(folder / "test" / "good", [good_part(rng) for _ in range(4)])
    write_images(folder / "test" / "scratch", [scratched_part(rng, i) for i in range(4)], prefix="s")
    masks = folder / "ground_truth" / "scratch"
    masks.mkdir(parents=True)
    for index in range(4):
        mask = np.zeros((48, 48), np.uint8)
        mask[14:18, 12 + index : 34 + index] = 255
        assert cv2.imwrite(str(masks / f"s{index}_mask.png"), mask)
    return folder


def test_bench_products_enrolls_every_k_and_seed_and_scores_each_fusion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    category, model = _category(tmp_path / "data"), model_file(tmp_path / "models")
    argv = ["bench-products", "--model", str(model), "--unseen", str(category), "--trained", str(category)]
    argv += ["--shots", "1", "2", "--seeds", "2", "--out", str(tmp_path / "out"), "--quiet"]
    assert main([*argv, "--results", str(tmp_path / "results.json")]) == 0
    document = json.loads((tmp_path / "out" / "products.json").read_text())
    assert json.loads((tmp_path / "results.json").read_text()) == document
    rows = document["rows"]
    assert [(r["kind"], r["k"], r["seed"]) for r in rows] == [
        ("unseen", 1, 0), ("unseen", 1, 1), ("unseen", 2, 0), ("unseen", 2, 1), ("trained", 6, 0),
    ]  # fmt: skip
    assert rows[0]["shots"] != rows[1]["shots"]  # the seeds pick different parts
    for row in rows:
        assert set(row["fusions"]) == {"inp", "memory", "fused"}
        for result in row["fusions"].values():
            assert 0.0 <= result["false_reject_rate"] <= 1.0 and 0.0 <= result["escape_rate"] <= 1.0
    calibrated = rows[0]["fusions"]["fused"]["calibrated"]  # on the 5 training parts not enrolled
    assert calibrated["rule"] == "tail" and calibrated["n_good"] == 5
    assert "calibrated" not in rows[-1]["fusions"]["fused"]  # every training part is enrolled
    trained = rows[-1]["fusions"]
    assert trained["memory"]["image_auroc"] == 1.0 and trained["fused"]["image_auroc"] == 1.0
    assert trained["memory"]["pixel_auroc"] > 0.9  # the scratch is where the memory map is high
    summary = {(e["kind"], e["k"]): e for e in document["summary"]}
    assert summary[("unseen", 2)]["seeds"] == 2 and "fused.aupro" in summary[("unseen", 2)]
    out = capsys.readouterr().out
    assert "| biscuit (unseen) | 2 | 2 |" in out and "of the model run" in out


def test_bench_products_refuses_a_folder_that_is_not_a_category(tmp_path: Path) -> None:
    model = model_file(tmp_path / "models")
    assert main(["bench-products", "--model", str(model), "--unseen", str(tmp_path), "--quiet"]) == 2


def test_map_sweep_scores_every_form_and_agrees_with_the_device_fusions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    category, model = _category(tmp_path / "data"), model_file(tmp_path / "models")
    argv = ["bench-products", "--model", str(model), "--trained", str(category), "--map-sweep"]
    assert main([*argv, "--out", str(tmp_path / "out"), "--quiet"]) == 0
    (row,) = json.loads((tmp_path / "out" / "products.json").read_text())["rows"]
    sweep, fusions = row["map_sweep"], row["fusions"]
    assert set(sweep) == set(MAP_FORMS)
    # the sweep's "memory" and "gate 0.2" forms are what the device's memory and fused products give
    assert sweep["memory"]["pixel_auroc"] == pytest.approx(fusions["memory"]["pixel_auroc"], abs=1e-12)
    assert sweep["gate 0.2"]["pixel_auroc"] == pytest.approx(fusions["fused"]["pixel_auroc"], abs=1e-12)
    assert sweep["gate 0.2"]["aupro"] == pytest.approx(fusions["fused"]["aupro"], abs=1e-12)
    assert len({result["aupro"] for result in sweep.values()}) > 1  # the forms give different maps
    out = capsys.readouterr().out
    assert "pixel AUROC / AUPRO of each map form" in out and "| biscuit (trained) | 6 |" in out
