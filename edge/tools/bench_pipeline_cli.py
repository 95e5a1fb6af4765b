"""``inp-edge bench-pipeline MODEL``: the whole inspection path beside the bare model, one run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from edge.cli import Command, count_arg

DESCRIPTION = """\
Measure the whole inspection path against the bare model, in the same run.

Frames: drawn washers of --frame-px, or the first 20 images of --frames DIR (use the product's good
parts: with images the model calls defective every part fails and gets its overlay drawn, the
worst case).

  bare       run_model on an already pre-processed input, one call after another.
  pipeline   camera frames from memory -> the service's own Pipeline: ROI and
             pre-processing, model, decision, verdict on a ZeroMQ PUB socket on 127.0.0.1, overlay
             JPEG on the output worker -> a SUB socket in another thread. A part is captured only when
             fewer than --window verdicts are outstanding, so the pipeline runs at its capacity
             without overruns (throughput); a second pipeline block with parts arriving on a fixed
             schedule at 80 % of the pipeline's capacity (a line the station keeps up with) gives
             the latency capture -> verdict received.

Blocks alternate (bare, pipeline, ...) --repeats times with --parts parts each; every figure is the
median over blocks, so the ratios compare like with like on a shared machine. --soak N adds one
pipeline run of N parts that checks every verdict arrives (by seq) and how resident memory grows
from part 1000 to part N. The table goes to stdout, the document to --json (written atomically).
"""


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="exported model (.onnx) following the inp-edge contract")
    parser.add_argument(
        "--providers", default="cpu", metavar="LIST", help="as for bench-model (default: cpu)"
    )
    parser.add_argument(
        "--threads", type=count_arg(0), default=0, metavar="N", help="intra-op threads (0: default)"
    )
    parser.add_argument(
        "--parts", type=count_arg(10), default=200, metavar="N", help="parts per block (default 200)"
    )
    parser.add_argument(
        "--repeats", type=count_arg(1), default=3, metavar="N", help="block pairs (default 3)"
    )
    parser.add_argument(
        "--frame-px", type=count_arg(32), default=512, metavar="PX", help="drawn frame side (512)"
    )
    parser.add_argument(
        "--frames", type=Path, default=None, metavar="DIR",
        help="replay the first 20 images of this folder (e.g. the product's good parts) instead of drawn washers",
    )  # fmt: skip
    parser.add_argument(
        "--window", type=count_arg(1), default=2, metavar="N", help="verdicts in flight (default 2)"
    )
    parser.add_argument("--no-overlays", action="store_true", help="skip the overlay JPEGs")
    parser.add_argument(
        "--spin-wait",
        action="store_true",
        help="let onnxruntime's threads spin between runs (station default: off)",
    )
    parser.add_argument(
        "--soak", type=count_arg(0), default=0, metavar="N", help="also one run of N parts (0: none)"
    )
    parser.add_argument(
        "--product",
        default=None,
        metavar="NAME",
        help="also time paced blocks scored by this enrolled product (its memory and fusion), from --state-dir",
    )
    parser.add_argument(
        "--state-dir", type=Path, default=Path("state"), help="where --product is (default ./state)"
    )
    parser.add_argument(
        "--json", type=Path, default=None, metavar="PATH", help="write the result as JSON here"
    )


def _run(args: argparse.Namespace) -> int:
    from edge.bench import host_info, write_json_atomic
    from edge.model.session import SessionSettings, open_session
    from edge.products.product import check_model
    from edge.tools.bench_pipeline import BenchPipelineSettings, bench_pipeline, soak

    settings = SessionSettings(
        providers=tuple(args.providers.split(",")), intra_op_threads=args.threads, spin_wait=args.spin_wait
    )
    product = None
    if args.product is not None:
        from edge.products.registry import ProductRegistry

        product = ProductRegistry(args.state_dir).load(args.product)  # cheap checks before the model opens
    loaded = open_session(args.model, settings)
    if product is not None:
        check_model(product, loaded.info.sha256, loaded.info.model_id)
    bench = BenchPipelineSettings(
        args.parts, args.repeats, args.frame_px, args.window, not args.no_overlays, frames=args.frames
    )

    def progress(done: int, total: int, blocks: list[Any]) -> None:
        text = ", ".join(f"{b.kind} {b.fps:.1f} fps" for b in blocks)
        print(f"block pair {done}/{total}: {text}", file=sys.stderr)

    document = bench_pipeline(loaded, bench, progress, product)
    if product is not None:
        document["product"] = {"name": product.name, "version": product.version, "fusion": product.fusion}
    if args.soak:
        print(f"soak: {args.soak} parts through one pipeline ...", file=sys.stderr)
        document["soak"] = soak(loaded, bench, args.soak)
    info = loaded.info
    document["model"] = {"path": str(info.path), "model_id": info.model_id, "precision": info.precision}
    document |= {"providers": list(loaded.providers_in_use), "settings": bench.__dict__, "host": host_info()}
    document["spin_wait"] = args.spin_wait
    document["command"] = " ".join(["inp-edge", *sys.argv[1:]])  # the command line, for the docs' figures
    print(format_table(document))
    if args.json is not None:
        write_json_atomic(args.json, document)
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def format_table(doc: dict[str, Any]) -> str:
    bare, pipe = doc["bare_latency_ms"], doc["pipeline_latency_ms"]
    lines = [
        f"model        {doc['model']['model_id']} ({doc['model']['precision']}) on {', '.join(doc['providers'])}",
        "             fps      p50 ms   p90 ms   p99 ms",
        f"bare model   {doc['bare_fps']:6.1f}   {bare['p50']:6.1f}   {bare['p90']:6.1f}   {bare['p99']:6.1f}",
        f"pipeline     {doc['pipeline_fps']:6.1f}   {pipe['p50']:6.1f}   {pipe['p90']:6.1f}   {pipe['p99']:6.1f}"
        "   (fps at capacity; latency capture -> verdict received on a line at 80 % load)",
        f"ratio        pipeline throughput {100 * doc['throughput_ratio']:.1f} % of the bare model; "
        f"p99 {doc['p99_excess_ms']:+.1f} ms",
        f"verdicts     {'all received (seq complete)' if doc['all_verdicts_received'] else 'SOME MISSING'}",
    ]
    if "product_latency_ms" in doc:
        prod = doc["product_latency_ms"]
        lines.append(
            f"with product {'':6}   {prod['p50']:6.1f}   {prod['p90']:6.1f}   {prod['p99']:6.1f}"
            f"   ({doc['product']['name']} v{doc['product']['version']}, fusion {doc['product']['fusion']}: "
            f"p50 {100 * doc['product_latency_share']:+.1f} % against the pipeline without it, same line rate)"
        )
    if doc.get("overlay_ms_p50") is not None:
        lines.append(
            f"overlays     p50 {doc['overlay_ms_p50']:.1f} ms render + JPEG (output thread, paced blocks)"
        )
    if "soak" in doc:
        soak = doc["soak"]
        growth = soak["rss_growth_mb_from_part_1000"]
        growth_text = "n/a (under 1000 parts)" if growth is None else f"{growth:+.1f} MB from part 1000"
        lines.append(
            f"soak         {soak['parts']} parts: {'every verdict received' if soak['all_verdicts_received'] else 'LOST'}"
            f"; resident memory {growth_text}"
        )
    return "\n".join(lines)


COMMAND = Command(
    name="bench-pipeline",
    help="time the whole path (frames -> model -> verdict over ZeroMQ) beside the bare model",
    description=DESCRIPTION,
    add_arguments=_add_arguments,
    run=_run,
)
