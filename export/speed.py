"""Speed measurement of exported models on this machine: FP32 vs INT8, pipeline vs bare network.

For each model: the full artifact (uint8 in; normalisation, network, anomaly map and score inside),
the bare network (float NCHW in; encoder and INP head only, out: the group features) and the INT8
artifact. All sessions are timed in one run, interleaved block by block so that a noisy neighbour
hits every variant alike (``time_interleaved``); each figure is the median over blocks of the block
medians, and every ratio (``summarise``) comes from the one run. The command and its report are in
export/commands/speed.py.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from edge.errors import ConfigError
from edge.model.contract import INPUT_IMAGE, ModelMetadata, ScoreStats, TrainingData
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
SPEED_MODEL_NAMES = tuple(spec.name for spec in SPEED_MODELS)
CHECKPOINT_ENCODER = "efficientnet_lite0"  # --checkpoint replaces the untrained model of this encoder


class BareNetwork(nn.Module):
    """Encoder + INP head only: float (1, 3, H, W) in [0, 1] → encoder and decoder group features."""

    def __init__(self, model: INPFormer) -> None:
        super().__init__()
        self.model = model.eval()

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        rec = self.model(images)
        return (*rec.encoder_groups, *rec.decoder_groups)


def check_speed_checkpoint(checkpoint: Path, specs: list[SpeedModel]) -> None:
    """Refuse, before any work, a checkpoint that cannot stand in for the EfficientNet-Lite0 model."""
    from export.checkpoint import read_checkpoint

    meta = read_checkpoint(checkpoint).meta
    wanted = [spec for spec in specs if spec.encoder == CHECKPOINT_ENCODER]
    if meta.encoder.name != CHECKPOINT_ENCODER or any(s.input_px != meta.transform.crop_px for s in wanted):
        sizes = ", ".join(f"{s.name}: {s.input_px} px" for s in wanted) or "none chosen"
        raise ConfigError(
            f"checkpoint {checkpoint} is {meta.encoder.name} at {meta.transform.crop_px} px; --checkpoint "
            f"stands in for the {CHECKPOINT_ENCODER} model only, at its input size ({sizes})",
            fix="pass a checkpoint trained with the default encoder and input size, or leave --checkpoint out",
        )


def build_speed_model(spec: SpeedModel, checkpoint: Path | None) -> INPFormer:
    if checkpoint is not None and spec.encoder == CHECKPOINT_ENCODER:
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
    """The FP32 artifact, the bare network and the default INT8 artifact (stamped int8) of one model."""
    from export.quantize import QuantizeSettings, build_int8, resolve_keep_float, set_precision

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
    settings = resolve_keep_float(QuantizeSettings(), spec.encoder)
    with tempfile.TemporaryDirectory(prefix="inp-speed-") as tmp:
        candidate = Path(tmp) / "candidate-int8.onnx"
        build_int8(fp32, candidate, iter([{INPUT_IMAGE: image} for image in calibration]), settings)
        int8 = set_precision(candidate, "int8", folder / f"{spec.name}-int8.onnx")
    return {"fp32": fp32, "bare-fp32": bare, "int8": int8}


@torch.no_grad()
def calibration_score_stats(model: INPFormer, input_px: int, images: list[np.ndarray]) -> ScoreStats:
    """pred_score statistics of the (untrained) graph on the calibration parts: real, if meaningless."""
    from export.artifact import score_statistics

    graph = ExportGraph(model, (input_px, input_px), MapSettings()).eval()
    scores = np.array([float(graph(torch.from_numpy(image))[1][0]) for image in images])
    return score_statistics(scores, source="speed benchmark calibration parts (untrained model)")


def calibration_images(input_px: int, count: int = 8) -> list[np.ndarray]:
    """Drawn parts (export/synthetic.py), drawn at the model's input size, as uint8 (1, H, W, 3) RGB."""
    from export.synthetic import draw_part

    rng = np.random.default_rng(0)
    images = [draw_part(rng, input_px) for _ in range(count)]  # BGR, input_px × input_px
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


def time_interleaved(
    sessions: Mapping[str, Any], feeds: Mapping[str, dict], *, runs: int, repeats: int, progress: bool
) -> dict:
    """Median latency (ms) per session: ``repeats`` blocks of ``runs`` calls, sessions taking turns.

    ``sessions`` are onnxruntime sessions by label, ``feeds`` their input feeds by the same label.
    Three untimed calls per session first (allocation, weight pre-packing).
    """
    if runs < 1 or repeats < 1:
        raise ConfigError(
            f"runs {runs} and repeats {repeats} must both be at least 1", fix="use --runs/--repeats >= 1"
        )
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


def summarise_artifacts(timing: Mapping[str, dict], flops: Mapping[str, float | None]) -> dict:
    """Per artifact: median ms, GFLOP / image and speed-up against the first one, all from one run."""
    first_ms = next(iter(timing.values()))["median_ms"]
    return {
        label: {
            "median_ms": entry["median_ms"],
            "speedup_vs_first": first_ms / entry["median_ms"],
            "gflop_per_image": None if flops.get(label) is None else flops[label] / 1e9,
        }
        for label, entry in timing.items()
    }
