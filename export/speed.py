"""Speed benchmark of exported models on this machine: FP32 vs INT8, pipeline vs bare network.

For each model: the full artifact (uint8 in; normalisation, network, anomaly map and score inside),
the bare network (float NCHW in; encoder and INP head only, out: the group features) and the INT8
artifact. All sessions are timed in one run, interleaved block by block so that a noisy neighbour
hits every variant alike; each figure is the median over blocks of the block medians. The matrix-
multiply peak (fp32 and u8×s8) is measured in the same run, and FLOPs are counted from the graphs.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from edge.atomic import write_text_atomic
from edge.model.contract import ModelMetadata, ScoreStats, TrainingData
from export.model.encoders import build_encoder
from export.model.inp_former import INPFormer
from export.model.postprocess import MapSettings
from export.onnx_export import (
    IR_VERSION,
    OPSET,
    ExportGraph,
    export_onnx,
    preprocess_record,
    quiet_tracer,
    save_model_atomic,
    simplify,
)


@dataclass(frozen=True)
class SpeedModel:
    name: str
    encoder: str
    input_px: int
    random_weights: bool  # DINOv2 weights can't be had here: random weights, speed only


SPEED_MODELS = (
    SpeedModel("effl0-256", "efficientnet_lite0", 256, random_weights=False),
    SpeedModel("vits14-224", "dinov2_vits14_reg4", 224, random_weights=True),
    SpeedModel("vitb14-392", "dinov2_vitb14_reg4", 392, random_weights=True),
)


class BareNetwork(nn.Module):
    """Encoder + INP head only: float (1, 3, H, W) in [0, 1] → encoder and decoder group features."""

    def __init__(self, model: INPFormer) -> None:
        super().__init__()
        self.model = model.eval()

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        rec = self.model(images)
        return (*rec.encoder_groups, *rec.decoder_groups)


def build_speed_model(spec: SpeedModel, checkpoint: Path | None) -> INPFormer:
    if checkpoint is not None and spec.encoder == "efficientnet_lite0":
        from export.checkpoint import load_model

        return load_model(checkpoint).model
    torch.manual_seed(0)
    encoder = build_encoder(spec.encoder, random_weights=spec.random_weights, input_size_px=spec.input_px)
    return INPFormer(encoder).eval()


def export_bare(model: INPFormer, input_px: int, out_path: Path) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        traced = Path(tmp) / "bare.onnx"
        dummy = torch.zeros((1, 3, input_px, input_px))
        with quiet_tracer():
            torch.onnx.export(BareNetwork(model), (dummy,), str(traced), dynamo=False, opset_version=OPSET)
        proto = simplify(traced, Path(tmp) / "bare-simplified.onnx")
    proto.ir_version = IR_VERSION
    return save_model_atomic(proto, out_path)


def export_variants(spec: SpeedModel, model: INPFormer, folder: Path, calibration: list[np.ndarray]) -> dict:
    from export.quantize import QuantizeSettings, build_int8, resolve_keep_float

    metadata = ModelMetadata(
        input_hw=(spec.input_px, spec.input_px),
        encoder=spec.encoder,
        precision="fp32",
        model_id=f"speed-{spec.name}",
        preprocess=preprocess_record(spec.input_px, MapSettings()),
        score_stats=calibration_score_stats(model, spec.input_px, calibration),
        training_data=TrainingData(
            layout="synthetic",
            data_root="",
            categories=(),
            images_per_category={},
            num_images=0,
            mode="none",
        ),
        extra={
            "inp_edge.note": "speed benchmark: untrained head"
            + (", random encoder" if spec.random_weights else "")
        },
    )
    fp32 = export_onnx(model, metadata, folder / f"{spec.name}-fp32.onnx")
    bare = export_bare(model, spec.input_px, folder / f"{spec.name}-bare-fp32.onnx")
    int8 = folder / f"{spec.name}-int8.onnx"
    settings = resolve_keep_float(QuantizeSettings(), spec.encoder)
    build_int8(fp32, int8, iter([{"image": image} for image in calibration]), settings)
    return {"fp32": fp32, "bare-fp32": bare, "int8": int8}


@torch.no_grad()
def calibration_score_stats(model: INPFormer, input_px: int, images: list[np.ndarray]) -> ScoreStats:
    """pred_score statistics of the (untrained) graph on the calibration parts: real, if meaningless."""
    from export.jobs import score_statistics

    graph = ExportGraph(model, (input_px, input_px), MapSettings()).eval()
    scores = np.array([float(graph(torch.from_numpy(image))[1][0]) for image in images])
    return score_statistics(scores, source="speed benchmark calibration parts (untrained model)")


def calibration_images(input_px: int, count: int = 8) -> list[np.ndarray]:
    """Drawn parts (export/synthetic.py) at the model's input size, as uint8 (1, H, W, 3) RGB."""
    import cv2

    from export.synthetic import draw_part

    rng = np.random.default_rng(0)
    images = [cv2.resize(draw_part(rng, input_px), (input_px, input_px)) for _ in range(count)]
    return [image[None, :, :, ::-1].copy() for image in images]


def cpu_session(path: Path):
    """A CPU session through edge's one opener (the bare network is not a contract artifact)."""
    from edge.model.session import SessionSettings, create_session

    return create_session(path, SessionSettings(providers=("cpu",), warmup_runs=0))


def feed_for(session, input_px: int) -> dict:
    first = session.get_inputs()[0]
    if first.type == "tensor(uint8)":
        return {first.name: calibration_images(input_px, 1)[0]}
    return {first.name: np.random.default_rng(0).random((1, 3, input_px, input_px), dtype=np.float32)}


def time_interleaved(sessions: dict, feeds: dict, *, runs: int, repeats: int, progress: bool) -> dict:
    """Median latency (ms) per session: ``repeats`` blocks of ``runs`` calls, sessions taking turns."""
    block_medians: dict[str, list[float]] = {name: [] for name in sessions}
    for name, session in sessions.items():
        for _ in range(3):
            session.run(None, feeds[name])
    for _ in tqdm(range(repeats), desc="timing blocks", disable=not progress):
        for name, session in sessions.items():
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                session.run(None, feeds[name])
                times.append((time.perf_counter() - started) * 1e3)
            block_medians[name].append(float(np.median(times)))
    return {
        name: {"median_ms": float(np.median(values)), "block_medians_ms": values}
        for name, values in block_medians.items()
    }


def run_speed(
    out: Path,
    *,
    names: list[str] | None = None,
    checkpoint: Path | None = None,
    runs: int = 10,
    repeats: int = 5,
    progress: bool = True,
) -> tuple[dict, Path]:
    from edge.model.flops import count_flops
    from edge.peak import matmul_peak

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    chosen = [spec for spec in SPEED_MODELS if not names or spec.name in names]
    results = {}
    for spec in chosen:
        model = build_speed_model(spec, checkpoint)
        paths = export_variants(spec, model, out, calibration_images(spec.input_px))
        sessions = {kind: cpu_session(path) for kind, path in paths.items()}
        feeds = {kind: feed_for(session, spec.input_px) for kind, session in sessions.items()}
        timing = time_interleaved(sessions, feeds, runs=runs, repeats=repeats, progress=progress)
        flops = {kind: count_flops(str(path)).total_flops for kind, path in paths.items()}
        results[spec.name] = {"spec": spec.__dict__, "timing": timing, "flops": flops}
    peak = matmul_peak(["cpu"], size=2048, runs=5)
    doc = {"peak": peak.__dict__, "models": results, "runs": runs, "repeats": repeats}
    doc["summary"] = summarise(doc)
    path = out / "speed.json"
    write_text_atomic(path, json.dumps(doc, indent=2, default=str) + "\n")
    return doc, path


def summarise(doc: dict) -> dict:
    """Ratios and efficiencies, all from the one run."""
    peak = doc["peak"]
    summary = {}
    for name, result in doc["models"].items():
        ms = {kind: entry["median_ms"] for kind, entry in result["timing"].items()}
        bare_gflops = result["flops"]["bare-fp32"] / ms["bare-fp32"] / 1e6
        summary[name] = {
            "fp32_ms": ms["fp32"],
            "int8_ms": ms["int8"],
            "bare_fp32_ms": ms["bare-fp32"],
            "int8_speedup": ms["fp32"] / ms["int8"],
            "pipeline_overhead_pct": 100.0 * (ms["fp32"] / ms["bare-fp32"] - 1.0),
            "bare_fp32_gflops": bare_gflops,
            "bare_fp32_fraction_of_peak": bare_gflops / peak["fp32_gflops"],
            "gflop_per_image": result["flops"]["bare-fp32"] / 1e9,
        }
    return summary


def render_speed(doc: dict) -> str:
    peak = doc["peak"]
    lines = [
        f"matmul peak in this run: fp32 {peak['fp32_gflops']:.0f} GFLOP/s, u8×s8 {peak['int8_gops']:.0f} GOP/s",
        "",
        "| model | GFLOP/img | FP32 ms | INT8 ms | INT8 speed-up | bare FP32 ms | pre/post overhead | bare FP32 % of peak |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in doc["summary"].items():
        lines.append(
            f"| {name} | {row['gflop_per_image']:.2f} | {row['fp32_ms']:.1f} | {row['int8_ms']:.1f} | "
            f"{row['int8_speedup']:.2f}× | {row['bare_fp32_ms']:.1f} | {row['pipeline_overhead_pct']:+.1f} % | "
            f"{100 * row['bare_fp32_fraction_of_peak']:.0f} % |"
        )
    return "\n".join(lines) + "\n"
