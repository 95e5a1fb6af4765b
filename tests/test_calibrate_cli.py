"""``inp-edge calibrate``: a product enrolled from real images, scored on real folders, saved or not."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from edge.calibrate_cli import RULE_CHOICES
from edge.products.calibration import RULES
from edge.products.registry import ProductRegistry
from tests.products_cli_support import bad_folder, good_folder, model_file, run_cli

ROW = re.compile(r"^(quantile|f1|tail) +(\S+) +(\S+) +(\S+) ", re.MULTILINE)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("calibrate")
    return {
        "model": model_file(root / "model"),
        "other_model": model_file(root / "other", size_px=24),
        "enroll": good_folder(root / "enroll", 4, seed=11),
        "good": good_folder(root / "good", 10, seed=12),
        "bad": bad_folder(root / "bad", 4, seed=13),
    }


@pytest.fixture(scope="module")
def enrolled_state(folders: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state dir holding cookie v1, enrolled once per module (tests copy it)."""
    from edge.cli import main

    state = tmp_path_factory.mktemp("enrolled")
    status = main(
        ["enroll", "--product", "cookie", "--shots", "4", "--images", str(folders["enroll"]),
         "--model", str(folders["model"]), "--state-dir", str(state), "--max-memory-tokens", "256"]
    )  # fmt: skip
    assert status == 0
    return state


@pytest.fixture()
def state(enrolled_state: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(enrolled_state, tmp_path / "state"))


def calibrate(capsys, folders, state, *extra: object) -> tuple[int, str, str]:  # noqa: ANN001
    return run_cli(
        capsys, "calibrate", "--product", "cookie", "--good", folders["good"], "--model", folders["model"],
        "--state-dir", state, *extra,
    )  # fmt: skip


def rows(out: str) -> dict[str, tuple[float, float, str]]:
    """rule → (threshold, false-reject %, escape % text) from the printed preview table."""
    return {m[1]: (float(m[2]), float(m[3]), m[4]) for m in ROW.finditer(out)}


def test_preview_prints_every_rule_and_writes_nothing(capsys, folders, state) -> None:  # noqa: ANN001
    status, out, err = calibrate(capsys, folders, state, "--bad", folders["bad"])
    assert status == 0, err
    table = rows(out)
    assert set(table) == {"quantile", "f1", "tail"}
    assert table["f1"][2] == "0.00"  # the scratches all score above the cut
    assert "10 good, 4 bad part(s) scored" in out
    assert "nothing written: add --apply" in out and "as cookie v2" in out
    assert ProductRegistry(state).versions("cookie") == [1]


def test_good_only_preview_has_no_f1_rule(capsys, folders, state) -> None:  # noqa: ANN001
    status, out, err = calibrate(capsys, folders, state)
    assert status == 0, err
    table = rows(out)
    assert set(table) == {"quantile", "tail"} and table["tail"][2] == "-"


def test_apply_saves_a_new_version_with_the_printed_threshold(capsys, folders, state) -> None:  # noqa: ANN001
    status, out, err = calibrate(capsys, folders, state, "--bad", folders["bad"], "--rule", "f1", "--apply")
    assert status == 0, err
    printed = rows(out)["f1"][0]
    registry = ProductRegistry(state)
    assert registry.versions("cookie") == [1, 2]
    saved, before = registry.load("cookie"), registry.load("cookie", version=1)
    assert saved.version == 2 and f"saved cookie v2: image and pixel threshold {printed:.6g}" in out
    assert saved.thresholds.image == pytest.approx(printed, rel=1e-5)
    assert saved.thresholds.pixel == saved.thresholds.image
    record = saved.calibrations[-1]
    assert (record.rule, record.n_good, record.n_bad) == ("f1", 10, 4)
    assert record.threshold == saved.thresholds.image and record.expected_escape == 0.0
    assert before.thresholds.image != saved.thresholds.image  # v1 is kept as it was
    assert saved.memory is not None and saved.memory.shape == before.memory.shape


def test_apply_tail_records_its_expected_false_reject(capsys, folders, state) -> None:  # noqa: ANN001
    status, out, err = calibrate(capsys, folders, state, "--target-false-reject", "0.01", "--apply")
    assert status == 0, err
    saved = ProductRegistry(state).load("cookie")
    assert saved.thresholds.image == pytest.approx(rows(out)["tail"][0], rel=1e-5)
    record = saved.calibrations[-1]
    assert record.rule == "tail" and record.expected_false_reject == 0.01 and record.expected_escape is None


def test_product_enrolled_with_another_model_is_refused(capsys, folders, state) -> None:  # noqa: ANN001
    status, out, err = run_cli(
        capsys, "calibrate", "--product", "cookie", "--good", folders["good"], "--model", folders["other_model"],
        "--state-dir", state, "--apply",
    )  # fmt: skip
    assert status == 2
    assert "was enrolled with model" in err and "re-enroll it for this model" in err
    assert out == ""
    assert ProductRegistry(state).versions("cookie") == [1]


def test_f1_without_bad_parts_is_refused_before_scoring(capsys, folders, state) -> None:  # noqa: ANN001
    status, _, err = calibrate(capsys, folders, state, "--rule", "f1", "--apply")
    assert status == 2 and "rule f1 needs bad parts" in err and "--bad DIR" in err
    assert "good:" not in err  # no progress bar: nothing was scored
    assert ProductRegistry(state).versions("cookie") == [1]


def test_rule_setting_out_of_range_is_refused(capsys, folders, state) -> None:  # noqa: ANN001
    status, _, err = calibrate(capsys, folders, state, "--quantile", "1.5")
    assert status == 2 and "quantile = 1.5 is outside [0.5, 1]" in err


def test_unknown_product_is_refused_with_the_registry_error(capsys, folders, state) -> None:  # noqa: ANN001
    status, _, err = run_cli(
        capsys, "calibrate", "--product", "biscuit", "--good", folders["good"], "--model", folders["model"],
        "--state-dir", state,
    )  # fmt: skip
    assert status == 2 and "no product 'biscuit'" in err and "inp-edge enroll --product biscuit" in err


def test_good_subfolder_under_bad_is_refused(capsys, folders, state, tmp_path) -> None:  # noqa: ANN001
    mixed = tmp_path / "test"
    shutil.copytree(folders["bad"], mixed / "scratch")
    shutil.copytree(folders["good"], mixed / "good")
    status, _, err = calibrate(capsys, folders, state, "--bad", mixed)
    assert status == 2 and "has a subfolder 'good'" in err


def test_scores_option_lists_every_image(capsys, folders, state) -> None:  # noqa: ANN001
    status, out, err = calibrate(capsys, folders, state, "--bad", folders["bad"], "--scores")
    assert status == 0, err
    assert len(re.findall(r"^  good part\d+\.png +\d+\.\d{4}$", out, re.MULTILINE)) == 10
    assert len(re.findall(r"^  bad  scratch\d+\.png +\d+\.\d{4}$", out, re.MULTILINE)) == 4


def test_enrolled_parts_are_called_optimistic(capsys, folders, state) -> None:  # noqa: ANN001
    status, _, err = run_cli(
        capsys, "calibrate", "--product", "cookie", "--good", folders["enroll"], "--model", folders["model"],
        "--state-dir", state,
    )  # fmt: skip
    assert status == 0 and "calibrate with other good parts" in err


def test_rule_choices_follow_the_calibration_rules() -> None:
    assert set(RULE_CHOICES) == set(RULES)
