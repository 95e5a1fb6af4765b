"""Run the real inspection service in tests: station configs, a background service, a subscriber."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from edge.config import load_config
from edge.publish.listen import Listener
from edge.publish.messages import VERDICT
from edge.service import RunSummary, Service
from tests.contract_models import brightness_model, save


def write_station(folder: Path, *, work: int = 0, size_px: int = 64, **sections: dict[str, Any]) -> Path:
    """A station config using the brightness model and ipc endpoints inside ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    model = save(brightness_model(size_px, work=work), folder / "model.onnx")
    document: dict[str, Any] = {
        "station": "t1",
        "state_dir": "state",
        "source": {"kind": "generated", "size_px": size_px, "parts": 20, "defect_fraction": 0.2},
        "model": {"path": model.name, "providers": ["cpu"], "intra_op_threads": 1, "warmup_runs": 1},
        "inspection": {"deadline_ms": 5000, "thresholds": {"image": 0.75}},
        "publish": {"endpoint": f"ipc://{folder}/pub", "heartbeat_period_s": 0.2},
        "control": {"endpoint": f"ipc://{folder}/ctl"},
        "queues": {"inspect": 64},
    }
    for name, values in sections.items():
        document[name] = {**document.get(name, {}), **values}
    path = folder / "station.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


class RunningService:
    def __init__(self, service: Service, thread: threading.Thread) -> None:
        self.service = service
        self.thread = thread
        self.summary: RunSummary | None = None
        self.error: BaseException | None = None

    def wait(self, timeout_s: float = 20.0) -> RunSummary:
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "the service did not finish in time"
        if self.error is not None:
            raise self.error
        assert self.summary is not None
        return self.summary


@contextmanager
def running_service(config_path: Path, *, max_parts: int = 0) -> Iterator[RunningService]:
    service = Service(load_config(config_path), max_parts=max_parts)
    holder: list[RunningService] = []

    def target() -> None:
        try:
            holder[0].summary = service.run()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            holder[0].error = exc

    thread = threading.Thread(target=target, name="service-under-test", daemon=True)
    holder.append(RunningService(service, thread))
    thread.start()
    try:
        yield holder[0]
    finally:
        service.stop()
        thread.join(10)


def collect_verdicts(listener: Listener, *, count: int, timeout_s: float = 20.0) -> list[dict[str, Any]]:
    """Verdict headers in arrival order until ``count`` or the timeout."""
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    while len(found) < count and time.monotonic() < deadline:
        message = listener.receive(0.2)
        if message is not None and message.kind == VERDICT:
            found.append(message.header)
    return found
