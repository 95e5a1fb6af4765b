"""``inp-edge enroll --images``: real image folders, a real ONNX model with patch_features, real files."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from edge.enroll_cli import DEFAULT_MAX_TOKENS_TEXT, FUSION_CHOICES
from edge.model.contract_check import file_sha256
from edge.products.memory import DEFAULT_MAX_TOKENS
from edge.products.product import FUSIONS
from edge.products.registry import ProductRegistry
from tests.products_cli_support import good_folder, good_part, model_file, run_cli, write_images

SHOTS = 8
ODD = 2  # index of the odd part in the folder with one


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return model_file(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return good_folder(tmp_path_factory.mktemp("good"), 5, seed=0)


@pytest.fixture(scope="module")
def with_odd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return good_folder(tmp_path_factory.mktemp("with_odd"), SHOTS, seed=1, odd_at=ODD)


def enroll(capsys, model: Path, images: Path, state: Path, *extra: object) -> tuple[int, str, str]:  # noqa: ANN001
    return run_cli(
        capsys, "enroll", "--product", "cookie", "--images", images, "--model", model, "--state-dir", state,
        "--max-memory-tokens", 256, *extra,
    )  # fmt: skip


def test_enroll_from_a_folder_saves_a_loadable_product(capsys, model, good, tmp_path) -> None:  # noqa: ANN001
    status, out, err = enroll(capsys, model, good, tmp_path, "--shots", 4)
    assert status == 0, err
    product = ProductRegistry(tmp_path).load("cookie", model_sha256=file_sha256(model))
    assert product.version == 1
    assert product.memory is not None and product.memory.shape == (256, 3)  # 4 × 1024 tokens, bounded
    assert product.memory.dtype == np.float32
    assert product.enrollment["shots"] == 4 and list(product.enrollment["flagged"]) == []
    assert product.enrollment["memory_tokens"] == 256 and product.enrollment["max_memory_tokens"] == 256
    assert "first 4 of 5 images" in product.enrollment["source"]
    t, g = product.thresholds, product.good_scores
    assert np.isfinite(t.image) and t.image == t.pixel and t.image > g.max > 0
    assert 0.3 < g.p50 < 3.0  # product units: a typical good part scores about 1
    for index in range(4):
        assert re.search(rf"part{index}\.png +\d+\.\d{{3}}$", out, re.MULTILINE)
    assert "part4.png" not in out
    assert "saved cookie v1" in out and "256 tokens x 3 channels (bound 256 tokens)" in out
    assert re.search(r"built in +\d+\.\d\d s after the last capture", out)
    assert f"image {t.image:.6g}" in out
    assert "parts: 100%" in err  # the progress bar, on stderr


def test_a_second_enrollment_is_a_new_version(capsys, model, good, tmp_path) -> None:  # noqa: ANN001
    assert enroll(capsys, model, good, tmp_path, "--shots", 3)[0] == 0
    status, out, err = enroll(capsys, model, good, tmp_path, "--shots", 5, "--fusion", "inp")
    assert status == 0, err
    assert "this enrollment adds v2" in err and "saved cookie v2" in out
    registry = ProductRegistry(tmp_path)
    assert registry.versions("cookie") == [1, 2]
    latest = registry.load("cookie")
    assert latest.fusion == "inp" and latest.memory is None and latest.enrollment["shots"] == 5
    assert registry.load("cookie", version=1).enrollment["shots"] == 3


def test_odd_part_is_flagged_and_left_out_when_confirmed(capsys, model, with_odd, tmp_path) -> None:  # noqa: ANN001
    status, out, err = enroll(capsys, model, with_odd, tmp_path, "--shots", SHOTS, "--yes")
    assert status == 0, err
    odd_line = next(line for line in out.splitlines() if f"part{ODD}.png" in line)
    assert "FLAGGED" in odd_line and odd_line.endswith("left out")
    saved = ProductRegistry(tmp_path).load("cookie")
    flagged = list(saved.enrollment["flagged"])
    assert f"part{ODD}.png" in flagged and len(flagged) < SHOTS // 2
    assert saved.enrollment["shots"] == SHOTS - len(flagged)
    assert out.index("FLAGGED") < out.index("saved cookie v1")  # flags shown before the save


def test_flagged_parts_without_confirmation_save_nothing(capsys, model, with_odd, tmp_path) -> None:  # noqa: ANN001
    status, out, err = enroll(capsys, model, with_odd, tmp_path, "--shots", SHOTS)
    assert status == 2
    assert "FLAGGED" in out and "saved" not in out
    assert "nothing saved" in err and "--yes" in err and "--keep-flagged" in err
    assert not ProductRegistry(tmp_path).exists("cookie")


def test_keep_flagged_keeps_them_in_the_product(capsys, model, with_odd, tmp_path) -> None:  # noqa: ANN001
    status, out, err = enroll(capsys, model, with_odd, tmp_path, "--shots", SHOTS, "--keep-flagged")
    assert status == 0, err
    assert "kept (--keep-flagged)" in out
    saved = ProductRegistry(tmp_path).load("cookie")
    assert saved.enrollment["shots"] == SHOTS and f"part{ODD}.png" in saved.enrollment["flagged"]


def test_too_few_images_is_an_error_before_the_model_is_opened(capsys, good, tmp_path) -> None:  # noqa: ANN001
    status, out, err = enroll(capsys, tmp_path / "absent.onnx", good, tmp_path / "state", "--shots", 9)
    assert status == 2
    assert "holds 5 image(s), --shots asks for 9" in err and "fix:" in err
    assert "absent.onnx" not in err  # the folder was refused first
    assert not (tmp_path / "state").exists()


def test_memory_fusion_with_a_model_without_patch_features_is_refused(capsys, good, tmp_path) -> None:  # noqa: ANN001
    plain = model_file(tmp_path / "m", patch_features=False)
    status, _, err = enroll(capsys, plain, good, tmp_path / "state", "--shots", 3)
    assert status == 2
    assert "no patch_features output" in err and "--fusion inp" in err
    assert not ProductRegistry(tmp_path / "state").exists("cookie")


def test_station_config_gives_model_state_dir_and_region_of_interest(capsys, model, tmp_path) -> None:  # noqa: ANN001
    rng = np.random.default_rng(5)
    parts = [np.concatenate([good_part(rng), np.zeros((48, 48, 3), np.uint8)], axis=1) for _ in range(5)]
    parts[1][:, 48:] = 255  # outside the region of interest: the station never sees it
    images = write_images(tmp_path / "wide", parts)
    config = tmp_path / "station.yaml"
    config.write_text(
        f"station: line1\nstate_dir: {tmp_path / 'state'}\nmodel:\n  path: {model}\n"
        f"source:\n  kind: replay\n  path: {images}\n"
        "inspection:\n  roi: {x: 0, y: 0, width: 48, height: 48}\n",
        encoding="utf-8",
    )
    status, out, err = run_cli(
        capsys, "enroll", "--product", "cookie", "--shots", 5, "--images", images, "--config", config
    )
    assert status == 0, err
    assert "FLAGGED" not in out
    saved = ProductRegistry(tmp_path / "state").load("cookie", model_sha256=file_sha256(model))
    assert saved.enrollment["shots"] == 5 and saved.memory.shape[0] == min(5 * 32 * 32, DEFAULT_MAX_TOKENS)


def test_live_options_are_refused_offline(capsys, model, good, tmp_path) -> None:  # noqa: ANN001
    status, _, err = enroll(capsys, model, good, tmp_path, "--shots", 2, "--endpoint", "tcp://127.0.0.1:1")
    assert status == 2 and "--endpoint is for --live" in err
    status, _, err = enroll(capsys, model, good, tmp_path, "--shots", 2, "--activate")
    assert status == 2 and "--activate needs the running service" in err
    assert not ProductRegistry(tmp_path).exists("cookie")


def test_bad_product_name_is_refused(capsys, model, good, tmp_path) -> None:  # noqa: ANN001
    status, _, err = run_cli(
        capsys, "enroll", "--product", "../x", "--shots", 1, "--images", good, "--model", model,
        "--state-dir", tmp_path,
    )  # fmt: skip
    assert status == 2 and "product name '../x' is not allowed" in err


def test_option_choices_follow_the_products_package() -> None:
    assert FUSION_CHOICES == FUSIONS
    assert str(DEFAULT_MAX_TOKENS) == DEFAULT_MAX_TOKENS_TEXT
