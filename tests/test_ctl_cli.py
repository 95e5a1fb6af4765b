"""``inp-edge ctl``: arguments, exit status and output against a real running service."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.cli import main
from edge.control import client_endpoint
from edge.ctl_cli import parse_arguments, timeout_for
from edge.errors import ConfigError
from tests.product_service_support import product_station, save_product, wait_until
from tests.service_harness import running_service


@pytest.mark.parametrize(
    ("words", "request_"),
    [
        ([], {"cmd": "status"}),
        (["name=cookie", "version=3"], {"cmd": "status", "name": "cookie", "version": 3}),
        (
            ["activate=true", "wait_s=0.5", "to_version=null"],
            {"cmd": "status", "activate": True, "wait_s": 0.5, "to_version": None},
        ),
        (
            ["label=good", "note=a=b", 'quoted="7"'],
            {"cmd": "status", "label": "good", "note": "a=b", "quoted": "7"},
        ),
    ],
)
def test_arguments_are_json_when_they_parse_and_strings_otherwise(words: list[str], request_: dict) -> None:
    assert parse_arguments("status", words) == request_


@pytest.mark.parametrize("word", ["name", "=3"])
def test_an_argument_without_key_and_value_is_refused(word: str) -> None:
    with pytest.raises(ConfigError, match="not key=value"):
        parse_arguments("product", [word])


@pytest.mark.parametrize(
    ("bound", "client"),
    [
        ("tcp://*:5557", "tcp://127.0.0.1:5557"),
        ("tcp://0.0.0.0:5557", "tcp://127.0.0.1:5557"),
        ("ipc:///run/inp/ctl", "ipc:///run/inp/ctl"),
    ],
)
def test_a_wildcard_bind_is_reached_on_the_loopback(bound: str, client: str) -> None:
    assert client_endpoint(bound) == client


def test_commands_that_wait_get_their_wait_added_to_the_timeout() -> None:
    assert timeout_for({"cmd": "status"}, None) == 10.0
    assert timeout_for({"cmd": "enroll_stop"}, None) == 40.0
    assert timeout_for({"cmd": "product", "wait_s": 5}, None) == 15.0
    assert timeout_for({"cmd": "enroll_stop"}, 1.5) == 1.5


def test_ctl_talks_to_a_running_service(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = product_station(tmp_path, product="washer")
    save_product(tmp_path, "washer", 5.0)
    with running_service(config):
        wait_until(lambda: main(["ctl", "--config", str(config), "calibrate_start", "label=good"]) == 0)
        capsys.readouterr()
        assert main(["ctl", "--config", str(config), "status"]) == 0
        status_text = capsys.readouterr().out
        assert main(["ctl", "--config", str(config), "product", "name=ghost"]) == 2
        refused = capsys.readouterr().err

        def previewed() -> bool:
            capsys.readouterr()  # only the output of the attempt that succeeds is kept
            return main(["ctl", "--config", str(config), "--json", "preview"]) == 0

        wait_until(previewed)
        preview = json.loads(capsys.readouterr().out)
        assert main(["ctl", "--config", str(config), "preview", "target_false_reject=0.01"]) == 0
        preview_text = capsys.readouterr().out
    assert "station t1: running" in status_text and "product: washer v1 (fusion inp" in status_text
    assert "calibration: collecting good" in status_text
    assert "error: no product 'ghost'" in refused and "fix: enroll it first" in refused
    assert preview["ok"] and preview["rules"][0]["rule"] == "quantile"
    assert (
        "current threshold 5" in preview_text and "tail" in preview_text and "false-reject %" in preview_text
    )


def test_ctl_without_a_station_says_so_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["ctl", "--endpoint", f"ipc://{tmp_path}/nobody", "--timeout-s", "0.2", "status"])
    assert code == 1 and "no reply from the control socket" in capsys.readouterr().err
