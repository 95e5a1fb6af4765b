"""The inspection service of one station: everything `inp-edge run` starts, in one owner.

Start-up order (cheap and refusable things first, nothing half-started on an error): the config was
checked by ``load_config``; the model is opened, checked against the contract, warmed up and its
providers checked; the thresholds are settled and the configured product is loaded when its folder
exists (a product of another model refuses the start); then the sockets are bound and the source
opened. Products, enrollment and calibration live in edge/products/station.py; this module wires
them in (the inspector's observer, the control socket's product commands, the status).
``run`` blocks until the source ends, ``max_parts`` parts, or ``stop()`` (SIGINT / SIGTERM), drains
what is in flight, and returns the exit status (0, or 1 when a loop failed fatally).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

from edge.archive import Archive, ArchiveSettings
from edge.camera.factory import open_source_from_config
from edge.camera.genicam_settings import FREE_RUN
from edge.config import StationConfig
from edge.control import ControlServer, RequestError, VerdictRing
from edge.decision import Thresholds
from edge.health import STOPPED, Health
from edge.inspector import Inspector, product_thresholds
from edge.metrics import Metrics
from edge.model import contract
from edge.model.detector import Detector, DetectorSettings
from edge.model.session import LoadedModel
from edge.outbox import Outbox
from edge.output_stage import OutputStage
from edge.pipeline import OutputJob, Pipeline, PipelineSettings
from edge.products.active import ActiveProduct
from edge.products.product import Product
from edge.products.registry import ProductRegistry
from edge.products.station import ProductStation
from edge.publish.messages import VerdictContext, heartbeat_frames, heartbeat_header
from edge.publish.zmq_publisher import Publisher, PublishSettings
from edge.station_model import load_model, settle_thresholds
from edge.usbfs import warn_if_usbfs_low
from edge.watchdog import StationNotify
from edge.workers import BEST_EFFORT_NICE, Worker

log = logging.getLogger("inp_edge.service")


@dataclass(frozen=True)
class RunSummary:
    station: str
    parts: int
    counters: dict[str, int]
    wall_s: float
    exit_status: int


class Service:
    def __init__(self, config: StationConfig, *, max_parts: int = 0) -> None:
        self.config = config
        self.max_parts = max_parts
        self.health = Health()
        self._stop = threading.Event()
        self.pipeline: Pipeline | None = None
        self.thresholds: Thresholds | None = None
        self.loaded: LoadedModel | None = None
        self.source: Any = None
        self.products: ProductStation | None = None
        self._outbox: Outbox | None = None
        self._camera_seen: dict[str, int] = {}
        self.metrics = Metrics(config.station)

    def stop(self) -> None:
        """Ask the service to stop (signal-safe: sets flags only)."""
        self._stop.set()
        if self.pipeline is not None:
            self.pipeline.stop()

    def run(self) -> RunSummary:
        started = time.monotonic()
        config = self.config
        n = config.notify
        notify = StationNotify(self.health, stall_s=n.stall_s, engine_build_max_s=n.engine_build_max_s)
        with notify.model_loading(config.model.providers, config.cache_dir):
            self.loaded = load_model(config)
        self.health.set_model_loaded(True)
        self.metrics.set_model(
            self.loaded.info.model_id, self.loaded.info.precision, self.loaded.providers_in_use
        )
        info = self.loaded.info
        log.info(
            "model %s (%s, %s) on %s, loaded in %.1f s",
            info.model_id, info.precision, info.encoder, ", ".join(self.loaded.providers_in_use), self.loaded.load_s,
        )  # fmt: skip
        self.thresholds = settle_thresholds(config, self.loaded)
        t = self.thresholds
        log.info("station thresholds: image %.5f, pixel %.5f (%s)", t.image, t.pixel, t.source)
        self.products = self._open_products()
        context = VerdictContext(
            config.station, config.inspection.product, info.model_id, info.precision, t.source
        )
        ring = VerdictRing(config.control.ring_size)
        with contextlib.ExitStack() as stack:
            publisher = stack.enter_context(Publisher(self._publish_settings()))
            if config.metrics.enabled:
                stack.enter_context(self.metrics.serving(config.metrics.host, config.metrics.port))
            outbox = Outbox(publisher, ring, context, self.metrics)
            self._outbox = outbox
            self._product_changed(self.products.active.snapshot().product)
            if config.source.kind == "genicam":
                warn_if_usbfs_low()  # USB3 Vision cameras starve on the kernel's 16 MB default
            source = stack.enter_context(open_source_from_config(config.source))
            self.source = source
            log.info("source: %s", source.name)
            archive_worker = self._archive_worker()
            self.pipeline = self._pipeline(source, outbox, archive_worker)
            stack.enter_context(self._control_server(ring))
            stack.callback(lambda: archive_worker and archive_worker.close(2.0))
            heartbeat = self._start_heartbeat(publisher, outbox)
            stack.callback(heartbeat.join, 2.0)
            if self._stop.is_set():
                self.pipeline.stop()
            notify.start(armed_for_trigger=self._armed_for_trigger())
            stack.callback(notify.stop)
            try:
                self.pipeline.run()
            finally:
                notify.stop()  # STOPPING=1
                self._stop.set()
                self.health.set_state(STOPPED)
                publisher.send_heartbeat(heartbeat_frames(self._heartbeat(outbox)))
        status = 1 if self.pipeline.fatal is not None else 0
        snapshot = self.health.snapshot()
        return RunSummary(
            config.station, self.pipeline.taken, snapshot.counters, time.monotonic() - started, status
        )

    def _open_products(self) -> ProductStation:
        """The product side; the configured product is active when its folder exists (checked here)."""
        assert self.loaded is not None and self.thresholds is not None
        info = self.loaded.info
        has_features = contract.OUTPUT_PATCH_FEATURES in info.optional_outputs
        active = ActiveProduct(info, has_patch_features=has_features)
        registry = ProductRegistry(self.config.state_dir)
        station = ProductStation(
            registry, active, station=self.config.station, on_change=self._product_changed
        )
        product = station.load_configured(self.config.inspection.product, self.thresholds)
        given = self.config.inspection.thresholds
        if product is not None and (given.image is not None or given.pixel is not None):
            log.info("inspection.thresholds of the station config are not used while a product is active")
        return station

    def _product_changed(self, product: Product | None) -> None:
        """Verdicts that carry no product of their own (overruns) and the metrics name the active one."""
        outbox = self._outbox
        if outbox is not None and product is not None:
            outbox.context = replace(outbox.context, product=product.name)

    def _armed_for_trigger(self) -> bool:
        """A triggered camera is ready when armed: a quiet trigger line must not hold back READY=1."""
        source = self.config.source
        return source.kind == "genicam" and source.genicam.trigger.mode != FREE_RUN

    def _publish_settings(self) -> PublishSettings:
        p = self.config.publish
        return PublishSettings(
            endpoint=p.endpoint,
            send_hwm_messages=p.send_hwm_messages,
            curve_secret_key_file=p.curve_secret_key_file,
            curve_clients_dir=p.curve_clients_dir,
        )

    def _control_server(self, ring: VerdictRing) -> ControlServer:
        c = self.config.control
        return ControlServer(
            c.endpoint,
            ring=ring,
            status=self.status,
            handlers={
                "capture": self._capture,
                "trigger": self._trigger,
                "announce_part": self._announce_part,
                **(self.products.handlers() if self.products is not None else {}),
            },
            allow_remote=c.allow_remote,
            curve_secret_key_file=c.curve_secret_key_file,
            curve_clients_dir=c.curve_clients_dir,
        )

    def _pipeline(self, source: Any, outbox: Outbox, archive_worker: Worker | None) -> Pipeline:
        assert self.loaded is not None and self.thresholds is not None and self.products is not None
        inspection, queues = self.config.inspection, self.config.queues
        detector = Detector(self.loaded, DetectorSettings(roi=inspection.roi, fit=inspection.fit))
        inspector = Inspector(
            detector, self.thresholds, inspection.deadline_ms, self.config.station,
            active=self.products.active, observer=self.products, default_product=inspection.product,
        )  # fmt: skip
        settings = PipelineSettings(
            inspect_queue=queues.inspect, output_queue=queues.output, max_parts=self.max_parts
        )
        handler = OutputStage(
            outbox, self.health, self.thresholds.pixel, publish_overlays=self.config.publish.overlays,
            archive_worker=archive_worker, sample_pass_every=self.config.archive.sample_pass_every,
            station=self.config.station,
        )  # fmt: skip
        return Pipeline(source, inspector, outbox, handler, self.health, settings)

    def _archive_worker(self) -> Worker | None:
        a = self.config.archive
        if not a.enabled:
            return None
        settings = ArchiveSettings(self.config.archive_folder, int(a.quota_mb * 1e6))
        archive = Archive(settings)
        self.health.set_archive(asdict(archive.status()))

        def save(item: tuple[OutputJob, bytes | None, str]) -> None:
            job, jpeg, reason = item
            record_id = f"t{job.frame.wall_time_ns}-s{job.seq}"
            outcome = archive.save(record_id, job.header, job.frame.image, jpeg, reason)
            if not outcome.ok:
                self.health.count("archive_failed")
            self.health.set_archive(asdict(archive.status()))

        return Worker("archive", save, self.config.queues.output, nice=BEST_EFFORT_NICE).start()

    def _capture(self, request: dict[str, Any]) -> dict[str, Any]:
        """Archive the next inspected part (reason "capture"), whatever its verdict."""
        if self.pipeline is None:
            raise RequestError(
                "capture: the pipeline is not running yet", fix="ask again once the station runs"
            )
        self.pipeline.request_capture()
        return {"note": "the next inspected part is archived with reason capture"}

    def _trigger(self, request: dict[str, Any]) -> dict[str, Any]:
        """A software trigger (camera sources in software-trigger mode), optionally with the part's id."""
        trigger = getattr(self.source, "trigger", None)
        if trigger is None:
            raise RequestError(
                "trigger: this station's source takes no software trigger", fix="use a genicam source"
            )
        trigger(request.get("part_id"))  # an InpEdgeError becomes the error reply
        return {}

    def _announce_part(self, request: dict[str, Any]) -> dict[str, Any]:
        """The id of the part whose trigger comes next (matched in order, echoed in its verdict)."""
        announce = getattr(self.source, "announce_part", None)
        if announce is None:
            raise RequestError(
                "announce_part: this station's source has no trigger", fix="use a triggered genicam source"
            )
        if "part_id" not in request:
            raise RequestError("announce_part: argument 'part_id' is missing", fix='add "part_id": "..."')
        announce(request["part_id"])
        return {}

    def source_status(self) -> dict[str, Any]:
        status = getattr(self.source, "status", None)
        return dict(status()) if callable(status) else {}

    def status(self) -> dict[str, Any]:
        snapshot = self.health.snapshot()
        info = self.loaded.info if self.loaded else None
        return {
            "station": self.config.station,
            **asdict(snapshot),
            "model": None
            if info is None
            else {"id": info.model_id, "precision": info.precision, "sha256": info.sha256},
            "providers": list(self.loaded.providers_in_use) if self.loaded else [],
            "thresholds": asdict(thresholds) if (thresholds := self._thresholds_in_use()) else None,
            "product_configured": self.config.inspection.product,
            **self._product_status(),
            "output": self.pipeline.output_counters() if self.pipeline else {},
            "source": {"name": getattr(self.source, "name", ""), **self.source_status()},
        }

    def _active_product(self) -> Product | None:
        return None if self.products is None else self.products.active.snapshot().product

    def _thresholds_in_use(self) -> Thresholds | None:
        product = self._active_product()
        if product is None or self.thresholds is None:
            return self.thresholds
        return product_thresholds(product, self.thresholds)

    def _product_status(self) -> dict[str, Any]:
        if self.products is None:
            return {"product": None, "enrollment": None, "calibration": None}
        return self.products.status_fields()

    def _heartbeat(self, outbox: Outbox) -> dict[str, Any]:
        s = self.health.snapshot()
        product = self._active_product()
        extra = {
            "archive": s.archive,
            "product": self.config.inspection.product if product is None else product.name,
            "product_version": None if product is None else product.version,
            "last_verdict": s.last_verdict,
        }
        if camera := self.source_status():
            extra["camera"] = camera
            self._sync_camera_metrics(camera)
        self.metrics.set_camera_connected(s.camera_connected)
        return heartbeat_header(
            station=self.config.station, seq_last=outbox.last_seq, state=s.state, camera_connected=s.camera_connected,
            model_loaded=s.model_loaded, fps=s.fps, counters=s.counters, extra=extra, wall_ns=time.time_ns(),
        )  # fmt: skip

    def _sync_camera_metrics(self, camera: dict[str, Any]) -> None:
        """Reconnects and lost frames counted by the camera, added to the metrics as they grow."""
        seen = self._camera_seen
        now = {key: int(camera.get(key, 0)) for key in ("reconnects", "lost_frames")}
        for _ in range(now["reconnects"] - seen.get("reconnects", 0)):
            self.metrics.camera_reconnected()
        self.metrics.frames_lost(now["lost_frames"] - seen.get("lost_frames", 0))
        self._camera_seen = now

    def _start_heartbeat(self, publisher: Publisher, outbox: Outbox) -> threading.Thread:
        period_s = self.config.publish.heartbeat_period_s

        def beat() -> None:
            while not self._stop.wait(period_s):
                publisher.send_heartbeat(heartbeat_frames(self._heartbeat(outbox)))

        thread = threading.Thread(target=beat, name="heartbeat", daemon=True)
        thread.start()
        return thread
