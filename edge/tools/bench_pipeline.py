"""The whole inspection path beside the bare model, measured in one run (``inp-edge bench-pipeline``).

Pipeline block: in-memory camera frames (drawn washers, so drawing is not timed) → the real
``Pipeline`` (ROI + pre-processing, model, decision, ``Outbox`` → PUB socket on 127.0.0.1, overlay
JPEGs on the output worker) → a real SUB socket in another thread. The source is gated by the
subscriber: part i is captured only when fewer than ``window`` verdicts are outstanding, so the
pipeline runs at its own capacity without overruns. Latency = capture → verdict received.

Bare block: ``run_model`` on an already pre-processed input in a loop; latency = one call.

Blocks alternate (bare, pipeline at capacity, pipeline on a paced line, ...) so a noisy neighbour
hits all alike; each figure is the median over blocks. Throughput comes from the capacity blocks;
the capture → received latency from the paced blocks: parts arrive on a fixed schedule at
``line_load`` (80 %) of the capacity the pipeline reached in the block before, i.e. a line the
station keeps up with, as on a real line. Resident memory is read at the first block's end and at the last's.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.camera.frame import Frame, SourceExhausted, now_ns
from edge.camera.generated import GeneratedLine
from edge.camera.pacing import Pacer
from edge.control import VerdictRing
from edge.decision import default_thresholds
from edge.health import Health
from edge.inspector import Inspector
from edge.model.contract import REQUIRED_OUTPUTS
from edge.model.detector import Detector
from edge.model.preprocess import preprocess_frame
from edge.model.session import LoadedModel, run_model
from edge.outbox import Outbox
from edge.output_stage import OutputStage
from edge.pipeline import Pipeline, PipelineSettings
from edge.products.active import ActiveProduct
from edge.products.product import Product
from edge.publish.listen import Listener
from edge.publish.messages import HEARTBEAT, VERDICT, VerdictContext, heartbeat_frames, heartbeat_header
from edge.publish.zmq_publisher import Publisher, PublishSettings
from edge.tools.line_report import summarise
from edge.tools.memory import rss_mb

RING_SIZE = 1000  # the station's default control.ring_size


@dataclass(frozen=True)
class BenchPipelineSettings:
    parts: int = 200  # per block
    repeats: int = 3
    frame_px: int = 512  # side of the drawn camera frames
    window: int = 2  # verdicts outstanding before the next capture
    overlays: bool = True
    frames: Path | None = None  # replay these images (e.g. the product's good parts); None: drawn washers
    line_load: float = 0.8  # latency blocks: parts arrive at this fraction of the pipeline's capacity
    rate_pps: float = 0.0  # set per latency block from the bare block before it


@dataclass(frozen=True)
class BlockResult:
    kind: str  # bare | pipeline (throughput, --window in flight) | latency (a paced line at 80 % load)
    parts: int
    wall_s: float
    fps: float
    latency_ms: dict[str, float]  # p50, p90, p99, max
    seq_complete: bool = True
    rss_mb: float = 0.0  # at the block's end
    rss_mb_at_part_1000: float | None = None  # long blocks: for the growth from part 1000 to the end
    counters: dict[str, int] = field(default_factory=dict)
    overlay_ms_p50: float | None = None  # render + JPEG of the overlays drawn in the block


class GatedFrames:
    """A FrameSource over frames in memory; ``grab`` waits for the gate (a free verdict slot) and,
    with ``rate_pps``, for the part's due time on a fixed schedule (a line running at that rate)."""

    def __init__(self, images: list[np.ndarray], parts: int, window: int, rate_pps: float = 0.0) -> None:
        self.name = f"memory ({len(images)} frames, {parts} parts, window {window}, {rate_pps:g} pps)"
        self._images, self._parts = images, parts
        self.gate = threading.Semaphore(window)
        self._pacer = Pacer(rate_pps)
        self._index = 0

    def __enter__(self) -> GatedFrames:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def connected(self) -> bool:
        return True

    def grab(self, timeout_s: float) -> Frame | None:
        if self._index >= self._parts:
            raise SourceExhausted
        if not self._pacer.wait(self._index, timeout_s) or not self.gate.acquire(timeout=timeout_s):
            return None
        t_ns, wall_ns = now_ns()
        image = self._images[self._index % len(self._images)]
        frame = Frame(self._index, t_ns, wall_ns, image, {"source": "memory"})
        self._index += 1
        return frame


def bench_frames(settings: BenchPipelineSettings, count: int = 20) -> list[np.ndarray]:
    """The camera frames of the run, in memory: images from ``settings.frames``, else drawn washers."""
    if settings.frames is None:
        return drawn_frames(settings.frame_px, count)
    from edge.camera.replay import list_replay_images, to_frame_pixels

    paths = [path for path, _ in list_replay_images(settings.frames)][:count]
    return [to_frame_pixels(cv2.imread(str(path), cv2.IMREAD_UNCHANGED)) for path in paths]


def drawn_frames(frame_px: int, count: int = 20) -> list[np.ndarray]:
    with GeneratedLine(parts=count, size_px=frame_px, defect_fraction=0.2, seed=1) as line:
        return [line.grab(1.0).image for _ in range(count)]


def bare_block(loaded: LoadedModel, images: list[np.ndarray], parts: int) -> BlockResult:
    preprocess = loaded.info.meta.preprocess
    inputs = [
        preprocess_frame(image, resize_px=preprocess.resize_px, crop_px=loaded.info.meta.crop_px)[0]
        for image in images
    ]
    times_ms = []
    started = time.perf_counter()
    for index in range(parts):
        start_ns = time.perf_counter_ns()
        run_model(loaded, inputs[index % len(inputs)], REQUIRED_OUTPUTS)  # what the Detector fetches
        times_ms.append((time.perf_counter_ns() - start_ns) / 1e6)
    wall_s = time.perf_counter() - started
    return BlockResult("bare", parts, wall_s, parts / wall_s, _percentiles(times_ms))


def pipeline_block(
    loaded: LoadedModel,
    images: list[np.ndarray],
    settings: BenchPipelineSettings,
    kind: str = "pipeline",
    product: Product | None = None,
) -> BlockResult:
    meta = loaded.info.meta
    thresholds = default_thresholds(meta.score_stats, meta.model_id)
    source = GatedFrames(images, settings.parts, settings.window, settings.rate_pps)
    health = Health()
    with Publisher(PublishSettings("tcp://127.0.0.1:*")) as publisher:
        context = VerdictContext("bench", "bench", meta.model_id, meta.precision, thresholds.source)
        outbox = Outbox(publisher, VerdictRing(RING_SIZE), context)
        subscriber = _Subscriber(publisher, source.gate)
        active = None
        if (
            product is not None
        ):  # scored by the product (its memory, fusion and thresholds), as a station would
            active = ActiveProduct(loaded.info)
            active.switch(product)
        inspector = Inspector(Detector(loaded), thresholds, deadline_ms=0, station="bench", active=active)
        handler = OutputStage(outbox, health, thresholds.pixel) if settings.overlays else None
        pipeline = Pipeline(
            source, inspector, outbox, handler, health, PipelineSettings(inspect_queue=settings.window + 2)
        )
        started = time.perf_counter()
        pipeline.run()
        subscriber.wait_for(settings.parts, timeout_s=10.0)
        wall_s = time.perf_counter() - started
        subscriber.close()
    received = subscriber.latency_ms
    counters = {**health.snapshot().counters, **pipeline.output_counters(), "received": len(received)}
    overlay_ms = summarise(list(handler.overlay_ms)) if handler is not None else None
    complete = subscriber.seqs == list(range(settings.parts))
    return BlockResult(
        kind, settings.parts, wall_s, len(received) / wall_s, _percentiles(received), complete, rss_mb(),
        subscriber.rss_mb_at_1000, counters, None if overlay_ms is None else overlay_ms.p50_ms,
    )  # fmt: skip


class _Subscriber:
    """A SUB socket in its own thread; each verdict received frees one gate slot."""

    def __init__(self, publisher: Publisher, gate: threading.Semaphore) -> None:
        self.latency_ms: list[float] = []
        self.seqs: list[int] = []
        self.rss_mb_at_1000: float | None = None
        self._gate = gate
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._listener = Listener(publisher.bound_endpoint or "", kinds=(VERDICT, HEARTBEAT))
        self._thread = threading.Thread(target=self._loop, name="bench-subscriber", daemon=True)
        self._thread.start()
        while not self._ready.wait(0.05):  # the slow joiner: probe until the subscription is up
            header = heartbeat_header(
                station="bench", seq_last=-1, state="starting", camera_connected=True, model_loaded=True,
                fps=0.0, counters={}, extra=None, wall_ns=time.time_ns(),
            )  # fmt: skip
            publisher.send_heartbeat(heartbeat_frames(header))

    def _loop(self) -> None:
        with self._listener as listener:
            while not self._stop.is_set():
                message = listener.receive(0.1)
                if message is None:
                    continue
                if message.kind == HEARTBEAT:
                    self._ready.set()
                    continue
                self.latency_ms.append((time.time_ns() - int(message.header["capture_wall_ns"])) / 1e6)
                self.seqs.append(int(message.header["seq"]))
                if len(self.seqs) == 1000:
                    self.rss_mb_at_1000 = rss_mb()
                self._gate.release()

    def wait_for(self, count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.seqs) < count and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)


def _median_of(values: list[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return float(np.median(known)) if known else None


def _percentiles(values_ms: list[float]) -> dict[str, float]:
    summary = summarise(values_ms)
    if summary is None:
        return {}
    return {"p50": summary.p50_ms, "p90": summary.p90_ms, "p99": summary.p99_ms, "max": summary.max_ms}


def soak(loaded: LoadedModel, settings: BenchPipelineSettings, parts: int) -> dict[str, Any]:
    """One pipeline run of ``parts`` parts: every verdict received, resident memory from part 1000 on."""
    from dataclasses import replace

    block = pipeline_block(loaded, bench_frames(settings), replace(settings, parts=parts))
    growth = None if block.rss_mb_at_part_1000 is None else block.rss_mb - block.rss_mb_at_part_1000
    return {"parts": parts, "all_verdicts_received": block.seq_complete, "rss_growth_mb_from_part_1000": growth,
            "block": block.__dict__}  # fmt: skip


def bench_pipeline(
    loaded: LoadedModel, settings: BenchPipelineSettings, progress: Any = None, product: Product | None = None
) -> dict[str, Any]:
    """Alternate bare and pipeline blocks; the medians, ratios and memory in one document.

    With ``product``, each repeat adds a paced block scored by that product, on the same line rate
    as the plain paced block before it: what the product's scoring adds to a part's latency."""
    images = bench_frames(settings)
    blocks: list[BlockResult] = []
    from dataclasses import replace

    for repeat in range(settings.repeats):
        blocks.append(bare_block(loaded, images, settings.parts))
        blocks.append(pipeline_block(loaded, images, settings))
        line = replace(settings, window=settings.window + 2, rate_pps=settings.line_load * blocks[-1].fps)
        blocks.append(pipeline_block(loaded, images, line, kind="latency"))
        if product is not None:
            blocks.append(pipeline_block(loaded, images, line, kind="product-latency", product=product))
        if progress is not None:
            progress(repeat + 1, settings.repeats, blocks[-4 if product is not None else -3 :])
    return summary_document(blocks)


def summary_document(blocks: list[BlockResult]) -> dict[str, Any]:
    """Medians over blocks: throughput at capacity, latency with one part in flight."""
    kinds = ("bare", "pipeline", "latency", "product-latency")
    by_kind = {kind: [b for b in blocks if b.kind == kind] for kind in kinds}

    def median(kind: str, pick) -> float:
        return float(np.median([pick(block) for block in by_kind[kind]]))

    def percentiles(kind: str) -> dict[str, float]:
        return {k: median(kind, lambda b, k=k: b.latency_ms[k]) for k in ("p50", "p90", "p99")}

    bare_fps, pipe_fps = median("bare", lambda b: b.fps), median("pipeline", lambda b: b.fps)
    pipelines = by_kind["pipeline"] + by_kind["latency"] + by_kind["product-latency"]
    with_product = {}
    if by_kind["product-latency"]:
        product_p50, plain_p50 = percentiles("product-latency")["p50"], percentiles("latency")["p50"]
        with_product = {
            "product_latency_ms": percentiles("product-latency"),
            "product_latency_share": product_p50 / plain_p50 - 1.0,  # what scoring adds to the p50
        }
    return {
        **with_product,
        "bare_fps": bare_fps,
        "pipeline_fps": pipe_fps,
        "throughput_ratio": pipe_fps / bare_fps,
        "bare_latency_ms": percentiles("bare"),
        "pipeline_latency_ms": percentiles("latency"),
        "pipeline_latency_at_capacity_ms": percentiles("pipeline"),
        "p99_excess_ms": percentiles("latency")["p99"] - percentiles("bare")["p99"],
        "overlay_ms_p50": _median_of([b.overlay_ms_p50 for b in by_kind["latency"]]),
        "all_verdicts_received": all(b.seq_complete for b in pipelines),
        "rss_mb_first_block": pipelines[0].rss_mb,
        "rss_mb_last_block": pipelines[-1].rss_mb,
        "blocks": [block.__dict__ for block in blocks],
    }
