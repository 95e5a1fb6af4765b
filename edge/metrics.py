"""Prometheus metrics of one station, served at ``http://HOST:PORT/metrics`` by prometheus_client.

Off by default (``metrics.enabled``) and bound to 127.0.0.1 when on: the page tells anyone who can
read it the line's rate and reject counts. Every station has its own ``CollectorRegistry`` (not the
library's process-global one), so two services, or a service and a test, never share counters.

What is exported (``_total`` / ``_bucket`` suffixes as Prometheus adds them):

- ``inp_edge_verdicts_total{product, verdict}``: published verdicts, pass / fail / error;
- ``inp_edge_error_verdicts_total{product, reason}``: ERROR verdicts by reason (overrun, late, ...);
- ``inp_edge_overruns_total``, ``inp_edge_late_verdicts_total``: the two fail-safe ERRORs;
- ``inp_edge_stage_latency_seconds{stage}``: histogram of each stage of a verdict's ``latency_ms``;
- ``inp_edge_camera_reconnects_total``, ``inp_edge_camera_lost_frames_total``,
  ``inp_edge_camera_connected`` (1 / 0);
- ``inp_edge_model_info{station, model_id, precision, providers}``: the model and its execution
  providers in use, best first.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, start_http_server

from edge.decision import ERROR, LATE, OVERRUN, VERDICTS, Verdict, reason_kind
from edge.errors import ConfigError

log = logging.getLogger("inp_edge.metrics")
# Stage latencies from 1 ms (one stage of a fast model) to 10 s (a deadline nobody should set).
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def error_reason(verdict: Verdict) -> str:
    """The reason's kind, without its free-text detail ("late: 310 ms > ..." → "late")."""
    return reason_kind(verdict.reason)


def stage_name(key: str) -> str:
    """A ``latency_ms`` key as a label: "model_ms" → "model"."""
    return key.removesuffix("_ms")


class Metrics:
    """The station's metrics; the service feeds it, ``serve`` publishes it."""

    def __init__(self, station: str, registry: CollectorRegistry | None = None) -> None:
        self.station = station
        self.registry = CollectorRegistry() if registry is None else registry
        r = self.registry
        self.verdicts = Counter(
            "inp_edge_verdicts",
            "Published verdicts by product and outcome",
            ["product", "verdict"],
            registry=r,
        )
        self.errors = Counter(
            "inp_edge_error_verdicts",
            "ERROR verdicts by product and reason",
            ["product", "reason"],
            registry=r,
        )
        self.overruns = Counter("inp_edge_overruns", "Parts that found the inspect queue full", registry=r)
        self.late = Counter("inp_edge_late_verdicts", "Verdicts that missed the station deadline", registry=r)
        self.latency = Histogram(
            "inp_edge_stage_latency_seconds",
            "Latency of each stage of a verdict (latency_ms of the verdict message)",
            ["stage"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.camera_reconnects = Counter(
            "inp_edge_camera_reconnects", "Camera reopened after a loss", registry=r
        )
        self.lost_frames = Counter(
            "inp_edge_camera_lost_frames", "Parts lost while the camera was away", registry=r
        )
        self.camera_connected = Gauge("inp_edge_camera_connected", "1 when the camera delivers", registry=r)
        self.model = Info("inp_edge_model", "The model in use and its execution providers", registry=r)
        self._products: set[str] = set()
        self._server: Any = None

    def observe_verdict(self, verdict: Verdict, product: str) -> None:
        """Count one published verdict and record its stage latencies."""
        if product not in self._products:  # every outcome shows from the start (rate() needs a 0)
            self._products.add(product)
            for outcome in VERDICTS:
                self.verdicts.labels(product, outcome)
        self.verdicts.labels(product, verdict.verdict).inc()
        if verdict.verdict == ERROR:
            reason = error_reason(verdict)
            self.errors.labels(product, reason).inc()
            if reason == OVERRUN:
                self.overruns.inc()
            elif reason == LATE:
                self.late.inc()
        for key, milliseconds in verdict.latency_ms.items():
            self.latency.labels(stage_name(key)).observe(milliseconds / 1000.0)

    def set_model(self, model_id: str, precision: str, providers: Sequence[str]) -> None:
        self.model.info(
            {
                "station": self.station,
                "model_id": model_id,
                "precision": precision,
                "providers": ",".join(providers),
            }
        )

    def set_camera_connected(self, connected: bool) -> None:
        self.camera_connected.set(1 if connected else 0)

    def camera_reconnected(self) -> None:
        self.camera_reconnects.inc()

    def frames_lost(self, count: int) -> None:
        if count > 0:
            self.lost_frames.inc(count)

    @property
    def port(self) -> int | None:
        """The port /metrics is served on, None when not serving."""
        return None if self._server is None else int(self._server.server_port)

    def serve(self, host: str, port: int) -> int:
        """Serve /metrics on ``host:port`` (0: a free port) in a daemon thread; the bound port."""
        try:
            self._server, _ = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise ConfigError(
                f"metrics endpoint http://{host}:{port}/metrics cannot be bound: {exc.strerror or exc}",
                fix="choose a free metrics.port (one per station) or set metrics.enabled: false",
            ) from None
        bound = int(self._server.server_port)
        log.info("metrics on http://%s:%d/metrics", host, bound)
        return bound

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @contextlib.contextmanager
    def serving(self, host: str, port: int) -> Iterator[int]:
        """``serve`` for the length of a ``with`` block."""
        bound = self.serve(host, port)
        try:
            yield bound
        finally:
            self.close()
