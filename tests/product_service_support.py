"""A running station with products for the service tests: a model with patch_features, saved products."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from edge.control import request
from edge.decision import Thresholds
from edge.model.contract_check import file_sha256
from edge.products.product import MapNorm, Product, ScoreSummary
from edge.products.registry import ProductRegistry
from edge.publish.listen import Listener
from edge.publish.messages import VERDICT
from tests.contract_models import brightness_model, save
from tests.service_harness import write_station

MODEL_ID = "brightness-test"


def product_station(folder: Path, *, product: str = "default", rate_pps: float = 60.0) -> Path:
    """A station on an endless generated line (good parts only) whose model has patch_features."""
    config = write_station(
        folder,
        source={"parts": 0, "rate_pps": rate_pps, "defect_fraction": 0.0},
        inspection={"product": product},
        archive={"enabled": False},
    )
    save(brightness_model(64, patch_features=True), folder / "model.onnx")
    return config


def save_product(folder: Path, name: str, threshold: float, *, sha256: str | None = None) -> Product:
    """A product scored by the model's map alone (grey level, unnormalised), saved in the station's state."""
    product = Product(
        name=name,
        model_sha256=sha256 or file_sha256(folder / "model.onnx"),
        model_id=MODEL_ID,
        fusion="inp",
        inp_norm=MapNorm(center=0.0, scale=1.0),
        memory_norm=None,
        thresholds=Thresholds(image=threshold, pixel=threshold, center=0.5, source=f"test {name}"),
        good_scores=ScoreSummary.of([0.6, 0.62, 0.64]),
        enrollment={"shots": 3, "source": "test"},
    )
    return ProductRegistry(folder / "state").save(product, note="test")


def ask(folder: Path, cmd: str, timeout_s: float = 10.0, **arguments: Any) -> dict[str, Any]:
    return request(f"ipc://{folder}/ctl", {"cmd": cmd, **arguments}, timeout_s=timeout_s)


def ask_raw(folder: Path, raw: bytes) -> dict[str, Any]:
    """Send bytes that are not necessarily JSON (request() always encodes JSON)."""
    import json

    socket = zmq.Context.instance().socket(zmq.REQ)
    socket.linger = 0
    socket.rcvtimeo = socket.sndtimeo = 5000
    try:
        socket.connect(f"ipc://{folder}/ctl")
        socket.send(raw)
        return json.loads(socket.recv())
    finally:
        socket.close(linger=0)


def wait_until(check: Callable[[], Any], timeout_s: float = 20.0, every_s: float = 0.05) -> Any:
    """``check()``'s first truthy value, polled until ``timeout_s`` (AssertionError after)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"not within {timeout_s} s: {check}")


def verdicts_until(
    listener: Listener, done: Callable[[dict[str, Any]], bool], timeout_s: float = 20.0
) -> list[dict]:
    """Verdict headers in arrival order up to and including the first one ``done`` accepts."""
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        message = listener.receive(0.2)
        if message is None or message.kind != VERDICT:
            continue
        found.append(message.header)
        if done(message.header):
            return found
    raise AssertionError(f"no verdict ended the wait within {timeout_s} s ({len(found)} received)")
