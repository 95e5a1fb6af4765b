"""The station's Prometheus endpoint, scraped over real HTTP on 127.0.0.1."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge.config import load_config
from edge.decision import FAIL, PASS, Verdict, error_verdict
from edge.errors import ConfigError
from edge.metrics import Metrics, error_reason, stage_name
from tests.service_harness import write_station

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode("utf-8")
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def verdict(outcome: str, *, model_ms: float = 12.0, queue_ms: float = 0.5) -> Verdict:
    return Verdict(
        7, outcome, 1, 2, score=0.3, raw_score=0.1, latency_ms={"queue_ms": queue_ms, "model_ms": model_ms}
    )


@pytest.fixture
def served() -> Iterator[tuple[Metrics, int]]:
    metrics = Metrics("line1")
    with metrics.serving("127.0.0.1", 0) as port:
        yield metrics, port


def test_scrape_counts_verdicts_by_product_and_errors_by_reason(served: tuple[Metrics, int]) -> None:
    metrics, port = served
    for outcome in (PASS, PASS, PASS, FAIL):
        metrics.observe_verdict(verdict(outcome), "washer")
    metrics.observe_verdict(error_verdict(8, 1, 2, "overrun: inspect queue full (4 parts waiting)"), "washer")
    metrics.observe_verdict(
        error_verdict(9, 1, 2, "late: 310.0 ms > deadline 250 ms (would have been pass)"), "washer"
    )
    metrics.observe_verdict(verdict(PASS), "bolt")
    samples = scrape(port)
    assert value(samples, "inp_edge_verdicts_total", product="washer", verdict="pass") == 3
    assert value(samples, "inp_edge_verdicts_total", product="washer", verdict="fail") == 1
    assert value(samples, "inp_edge_verdicts_total", product="washer", verdict="error") == 2
    assert value(samples, "inp_edge_verdicts_total", product="bolt", verdict="pass") == 1
    assert value(samples, "inp_edge_verdicts_total", product="bolt", verdict="error") == 0, (
        "zero shows from the start"
    )
    assert value(samples, "inp_edge_error_verdicts_total", product="washer", reason="overrun") == 1
    assert value(samples, "inp_edge_error_verdicts_total", product="washer", reason="late") == 1
    assert value(samples, "inp_edge_overruns_total") == 1
    assert value(samples, "inp_edge_late_verdicts_total") == 1


def test_stage_latency_histograms_in_seconds(served: tuple[Metrics, int]) -> None:
    metrics, port = served
    metrics.observe_verdict(verdict(PASS, model_ms=12.0), "washer")
    metrics.observe_verdict(verdict(PASS, model_ms=40.0), "washer")
    samples = scrape(port)
    name = "inp_edge_stage_latency_seconds"
    assert value(samples, f"{name}_count", stage="model") == 2
    assert value(samples, f"{name}_sum", stage="model") == pytest.approx(0.052)
    assert value(samples, f"{name}_bucket", stage="model", le="0.01") == 0
    assert value(samples, f"{name}_bucket", stage="model", le="0.025") == 1
    assert value(samples, f"{name}_bucket", stage="model", le="0.05") == 2
    assert value(samples, f"{name}_count", stage="queue") == 2


def test_camera_counters_and_model_providers(served: tuple[Metrics, int]) -> None:
    metrics, port = served
    metrics.set_model("washer-1a2b", "int8", ["TensorrtExecutionProvider", "CUDAExecutionProvider"])
    metrics.camera_reconnected()
    metrics.frames_lost(5)
    metrics.frames_lost(0)
    metrics.set_camera_connected(False)
    samples = scrape(port)
    assert value(samples, "inp_edge_camera_reconnects_total") == 1
    assert value(samples, "inp_edge_camera_lost_frames_total") == 5
    assert value(samples, "inp_edge_camera_connected") == 0
    info = {
        "station": "line1",
        "model_id": "washer-1a2b",
        "precision": "int8",
        "providers": "TensorrtExecutionProvider,CUDAExecutionProvider",
    }
    assert value(samples, "inp_edge_model_info", **info) == 1


def test_each_station_has_its_own_registry() -> None:
    first, second = Metrics("a"), Metrics("b")
    first.observe_verdict(verdict(PASS), "washer")
    with first.serving("127.0.0.1", 0) as port_a, second.serving("127.0.0.1", 0) as port_b:
        assert value(scrape(port_a), "inp_edge_verdicts_total", product="washer", verdict="pass") == 1
        assert (
            "inp_edge_verdicts_total",
            frozenset({("product", "washer"), ("verdict", "pass")}),
        ) not in scrape(port_b)


def test_served_on_localhost_only_by_default(tmp_path: Path) -> None:
    config = load_config(write_station(tmp_path))
    assert config.metrics.enabled is False
    metrics = Metrics("line1")
    with metrics.serving(config.metrics.host, 0):
        assert metrics._server.server_address[0] == "127.0.0.1"


def test_a_port_in_use_is_a_config_error_naming_it() -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        with pytest.raises(ConfigError, match=f"http://127.0.0.1:{port}/metrics") as caught:
            Metrics("line1").serve("127.0.0.1", port)
        assert "metrics.port" in caught.value.fix
    finally:
        holder.close()


@pytest.mark.parametrize(
    ("reason", "kind"),
    [("overrun: inspect queue full", "overrun"), ("late: 3 ms", "late"), ("exception: ValueError: x", "exception"),
     ("camera-lost", "camera-lost"), ("", "unknown")],
)  # fmt: skip
def test_error_reason_is_the_kind_without_detail(reason: str, kind: str) -> None:
    assert error_reason(error_verdict(1, 1, 1, reason)) == kind


def test_stage_names_drop_the_unit() -> None:
    assert [stage_name(k) for k in ("model_ms", "capture_to_publish_ms", "total")] == [
        "model",
        "capture_to_publish",
        "total",
    ]
