"""``inp-edge products list|show|rollback``: outputs and exit statuses on a real registry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge.cli import main
from edge.decision import Thresholds
from edge.products.product import CalibrationRecord
from edge.products.registry import ProductRegistry
from tests.config_support import MINIMAL, write_station
from tests.registry_support import make_product


def two_products(state: Path) -> ProductRegistry:
    """cookie: v1 enrolled (with memory), v2 calibrated; biscuit: v1 without memory."""
    registry = ProductRegistry(state)
    cookie = registry.save(make_product(memory=np.ones((96, 8), np.float32)), note="enrolled")
    record = CalibrationRecord("2026-11-30T12:00:00Z", "quantile", 2.25, 40, 3, 0.01, 0.0, "q 0.99 + 0.1")
    registry.save(cookie.with_thresholds(Thresholds(2.25, 2.5, 25.0), record), note="calibrated")
    registry.save(make_product("biscuit", image=0.8), note="enrolled")
    return registry


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["products", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_list_prints_one_row_per_product(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    two_products(tmp_path)
    status, out, _ = run(capsys, "list", "--state-dir", str(tmp_path))
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == f"products in {tmp_path / 'products'}"
    assert lines[1].split() == [
        "NAME",
        "CURRENT",
        "VERSIONS",
        "MODEL",
        "FUSION",
        "IMAGE",
        "THR",
        "MEMORY",
    ] + [
        "TOKENS",
        "ENROLLED",
        "AT",
    ]
    assert lines[2].split() == [
        "biscuit",
        "v1",
        "1",
        "bottle-effl0-20261122",
        "inp",
        "0.8",
        "0",
        "2026-11-30T10:00:00Z",
    ]
    assert lines[3].split() == ["cookie", "v2", "2", "bottle-effl0-20261122", "fused", "2.25", "96"] + [
        "2026-11-30T10:00:00Z"
    ]


def test_list_reads_the_state_dir_from_the_station_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_station(tmp_path, MINIMAL)  # state_dir defaults to ./state beside the file
    ProductRegistry(tmp_path / "state").save(make_product())
    status, out, _ = run(capsys, "list", "--config", str(config))
    assert status == 0 and out.splitlines()[2].startswith("cookie  v1")


def test_list_without_products_says_how_to_make_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(capsys, "list", "--state-dir", str(tmp_path))
    assert status == 0
    assert (
        out.strip()
        == f"no products in {tmp_path / 'products'} (make one: inp-edge enroll --product NAME ...)"
    )


def test_list_reports_a_damaged_product_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    two_products(tmp_path)
    (tmp_path / "products" / "biscuit" / "v0001" / "product.yaml").write_text("schema: 1\n")
    status, out, err = run(capsys, "list", "--state-dir", str(tmp_path))
    assert status == 2 and out.splitlines()[2].startswith("cookie  v2")
    assert err.startswith("inp-edge products: error: biscuit: ") and "product.yaml: name is missing" in err


def test_show_prints_settings_calibrations_and_versions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    two_products(tmp_path)
    status, out, _ = run(capsys, "show", "cookie", "--state-dir", str(tmp_path))
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == "cookie v2 (current)"
    assert "  thresholds  image 2.25, pixel 2.5, min region 25 px²" in lines
    assert "  memory      96 tokens x 8 channels, float32" in lines
    assert "  model       bottle-effl0-20261122 (sha256 5e5e5e5e5e5e)" in lines
    calibrations = lines[lines.index("calibrations:") + 2 :]
    assert calibrations[0].split()[:5] == ["2026-11-30T10:00:00Z", "enrollment", "1.5", "8", "0"]
    assert calibrations[1].split()[1:7] == ["quantile", "2.25", "40", "3", "1.00%", "0.00%"]
    versions = lines[lines.index("versions:") + 2 :]
    assert versions[0].split()[0] == "v1" and versions[0].endswith("enrolled")
    assert versions[1].split()[:2] == ["*", "v2"] and versions[1].endswith("calibrated")


def test_show_an_earlier_version_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    two_products(tmp_path)
    status, out, _ = run(capsys, "show", "cookie", "--version", "1", "--json", "--state-dir", str(tmp_path))
    assert status == 0
    document = json.loads(out)
    assert document["current"] is False and document["product"]["version"] == 1
    assert document["product"]["thresholds"]["image"] == 1.5 and document["product"]["note"] == "enrolled"
    assert [row["version"] for row in document["versions"]] == [1, 2]
    assert document["product"]["memory"] == {"file": "memory.npy", "shape": [96, 8], "dtype": "float32"}


def test_rollback_saves_a_new_current_version(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = two_products(tmp_path)
    status, out, _ = run(capsys, "rollback", "cookie", "--state-dir", str(tmp_path))
    assert status == 0
    assert out.splitlines()[0] == "cookie v3 is now current: rollback to v1 (v2 was current)"
    assert registry.current_version("cookie") == 3 and registry.load("cookie").thresholds.image == 1.5
    status, out, _ = run(capsys, "rollback", "cookie", "--to", "2", "--state-dir", str(tmp_path))
    assert status == 0 and out.startswith("cookie v4 is now current: rollback to v2 (v3 was current)")
    assert registry.load("cookie").thresholds.image == 2.25


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["rollback", "biscuit"], "v1 is the first version"),
        (["rollback", "cookie", "--to", "2"], "v2 is already the current version"),
        (["show", "cake"], "no product 'cake'"),
        (["show", "cookie", "--version", "9"], "product cookie has no version 9"),
        (["show", ".."], "product name '..' is not allowed"),
    ],
)
def test_refusals_exit_2_with_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    two_products(tmp_path)
    status, out, err = run(capsys, *argv, "--state-dir", str(tmp_path))
    assert status == 2 and out == ""
    assert err.startswith("inp-edge products: error: ") and message in err and "\n  fix: " in err


@pytest.mark.parametrize(
    "argv",
    [["list"], ["list", "--state-dir", "a", "--config", "b.yaml"], ["show"], ["rollback", "x", "--to", "0"]],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    status, _, err = run(capsys, *argv)
    assert status == 2 and "usage: inp-edge products" in err


def test_a_broken_station_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_station(tmp_path, "station: s1\n")
    status, _, err = run(capsys, "list", "--config", str(config))
    assert status == 2 and "model" in err
