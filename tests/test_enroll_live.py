"""``inp-edge enroll --live`` and ``--activate`` against the real running service and its control socket."""

from __future__ import annotations

import _thread
import re
import threading
from pathlib import Path

from edge.products.registry import ProductRegistry
from tests.product_service_support import ask, product_station, wait_until
from tests.products_cli_support import good_folder, run_cli
from tests.service_harness import running_service


def test_live_enrollment_collects_builds_saves_and_activates(capsys, tmp_path: Path) -> None:  # noqa: ANN001
    config = product_station(tmp_path)
    with running_service(config):
        wait_until(lambda: ask(tmp_path, "status")["ok"])
        status, out, err = run_cli(
            capsys, "enroll", "--product", "washer2", "--shots", 3, "--live", "--config", config,
            "--max-memory-tokens", 200, "--activate",
        )  # fmt: skip
        active = ask(tmp_path, "status")["product"]
    assert status == 0, err
    assert "collecting 3 good part(s)" in err and "3/3" in err  # the progress bar, on stderr
    flagged = len(re.findall(r"^  FLAGGED frame \d+: .+; left out$", out, re.MULTILINE))
    assert flagged < 2 and len(re.findall(r"^  frame \d+ +\d+\.\d{3}$", out, re.MULTILINE)) == 3 - flagged, (
        out
    )
    assert "saved washer2 v1" in out and "200 tokens x 3 channels (bound 200 tokens)" in out
    assert re.search(r"built in +\d+\.\d\d s after the last capture", out)
    saved = ProductRegistry(tmp_path / "state").load("washer2")
    assert saved.enrollment["shots"] == 3 - flagged and "station t1" in saved.enrollment["source"]
    assert active["name"] == "washer2" and active["version"] == 1


def test_ctrl_c_cancels_the_enrollment_on_the_service(capsys, tmp_path: Path) -> None:  # noqa: ANN001
    config = product_station(tmp_path, rate_pps=2.0)
    with running_service(config):
        wait_until(lambda: ask(tmp_path, "status")["ok"])
        timer = threading.Timer(1.0, _thread.interrupt_main)  # Ctrl-C while the CLI waits for parts
        timer.start()
        try:
            status, _, err = run_cli(
                capsys, "enroll", "--product", "washer3", "--shots", 50, "--live", "--config", config
            )
        finally:
            timer.cancel()
        after = ask(tmp_path, "enroll_status")
    assert status == 130
    assert "cancelled on the service: nothing saved" in err
    assert after["state"] == "cancelled" and after["collected"] < 50
    assert not ProductRegistry(tmp_path / "state").exists("washer3")


def test_offline_enrollment_with_activate_switches_the_running_service(capsys, tmp_path: Path) -> None:  # noqa: ANN001
    config = product_station(tmp_path)
    images = good_folder(tmp_path / "good", 4, seed=0)
    with running_service(config):
        wait_until(lambda: ask(tmp_path, "status")["ok"])
        status, out, err = run_cli(
            capsys, "enroll", "--product", "cookie", "--shots", 4, "--images", images, "--config", config,
            "--max-memory-tokens", 200, "--activate", "--yes",
        )  # fmt: skip
        active = ask(tmp_path, "status")["product"]
    assert status == 0, err
    assert "saved cookie v1" in out and re.search(r"active on the service: cookie v1, from frame \d+", out)
    assert active["name"] == "cookie" and active["version"] == 1


def test_a_refusal_by_the_service_is_an_error_with_its_fix(capsys, tmp_path: Path) -> None:  # noqa: ANN001
    config = product_station(tmp_path)
    with running_service(config):
        wait_until(lambda: ask(tmp_path, "status")["ok"])
        status, _, err = run_cli(
            capsys, "enroll", "--product", "washer", "--shots", 100000, "--live", "--config", config
        )
    assert status == 2
    assert "refused enroll_start" in err and "fix:" in err
    assert not ProductRegistry(tmp_path / "state").exists("washer")
