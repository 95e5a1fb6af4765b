"""The demo's model, built from nothing and cached: drawn parts → train → export → INT8 behind the gate.

``build_demo_model(out)`` does the work once; a second call with the same recipe finds
``out/build.json`` and the artifacts it names (checked by sha256) and returns at once. Changing the
recipe (epochs, size, seed) or the pre-processing rebuilds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from edge.atomic import write_text_atomic
from edge.model.contract import RESIZE_METHOD
from edge.model.contract_check import file_sha256

DEMO_INPUT_PX = 128  # small, so the whole demo runs in a few minutes on two CPU cores
BUILD_FILE = "build.json"


@dataclass(frozen=True)
class DemoRecipe:
    epochs: int = 40
    size_px: int = DEMO_INPUT_PX
    seed: int = 0
    resize_method: str = RESIZE_METHOD  # a change of THE pre-processing invalidates the cache


@dataclass(frozen=True)
class DemoModel:
    model: Path  # what the station runs: INT8 when the gate passed, else FP32
    fp32: Path
    int8: Path | None
    reused: bool
    build_s: float
    notes: tuple[str, ...]


def build_demo_model(
    out: Path, recipe: DemoRecipe = DemoRecipe(), say: Callable[[str], None] = print
) -> DemoModel:
    out = Path(out)
    cached = _cached(out, recipe)
    if cached is not None:
        return cached
    started = time.monotonic()
    from export.artifact import export_checkpoint
    from export.quantize import QuantizeSettings, quantize_artifact
    from export.synthetic import SyntheticSpec, write_synthetic_dataset
    from export.train import TrainConfig, train

    spec = SyntheticSpec(size_px=recipe.size_px, seed=recipe.seed)
    data_root = out / "data"
    write_synthetic_dataset(data_root, spec)
    say(f"      drew {spec.n_train} good training parts and a labelled test set in {data_root}")
    config = TrainConfig(
        data_root=data_root, categories=(spec.category,), epochs=recipe.epochs, batch_size=4, warmup_steps=10,
        crop_px=recipe.size_px, resize_px=recipe.size_px, out_dir=out / "model",
    )  # fmt: skip
    result = train(config)
    say(
        f"      trained an INP-Former (EfficientNet-Lite0) for {result.steps} steps in {result.seconds:.0f} s"
    )
    fp32 = export_checkpoint(result.checkpoint_path, out / "model.onnx").path
    outcome = quantize_artifact(
        fp32, out / "model-int8.onnx", data_root, (spec.category,), QuantizeSettings(calibration_count=8)
    )
    say(f"      exported {fp32.name}; INT8 {outcome.gate.describe()}")
    int8 = outcome.written
    model = DemoModel(
        int8 or fp32,
        fp32,
        int8,
        False,
        time.monotonic() - started,
        () if int8 else ("INT8 refused by the gate: FP32 runs",),
    )
    record = {"recipe": asdict(recipe), "model": model.model.name, "fp32": fp32.name,
              "int8": int8.name if int8 else None, "sha256": {p.name: file_sha256(p) for p in (fp32, int8) if p},
              "build_s": round(model.build_s, 1), "gate": outcome.gate.describe()}  # fmt: skip
    write_text_atomic(out / BUILD_FILE, json.dumps(record, indent=2) + "\n")
    return model


def _cached(out: Path, recipe: DemoRecipe) -> DemoModel | None:
    try:
        record = json.loads((out / BUILD_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if record.get("recipe") != asdict(recipe):
        return None
    for name, digest in record.get("sha256", {}).items():
        path = out / name
        if not path.is_file() or file_sha256(path) != digest:
            return None
    int8 = out / record["int8"] if record.get("int8") else None
    return DemoModel(out / record["model"], out / record["fp32"], int8, True, 0.0, ())
