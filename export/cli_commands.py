"""What each `inp-export` subcommand does with its parsed arguments (see export/cli.py)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import yaml

from edge.errors import InpEdgeError
from export.checkpoint import CheckpointError
from export.model.encoders import WeightsError

# The user's to fix (a bad path, file or option): printed as one message, not as a traceback.
USER_ERRORS = (InpEdgeError, CheckpointError, WeightsError, FileNotFoundError, NotADirectoryError, ValueError)

TRAIN_FLAG_FIELDS = (
    "data_root", "layout", "encoder", "encoder_weights", "epochs", "batch_size", "lr", "warmup_steps", "seed",
    "crop_px", "resize_px", "max_minutes", "num_threads", "resume_from", "out_dir",
)  # fmt: skip


def train_config_from(args: argparse.Namespace):
    """TrainConfig from an optional YAML file, overridden by the flags that were given."""
    from export.train import TrainConfig

    allowed = {field.name for field in dataclasses.fields(TrainConfig)}
    values: dict = {} if args.config is None else read_train_yaml(Path(args.config), allowed)
    values.update(
        {name: getattr(args, name) for name in TRAIN_FLAG_FIELDS if getattr(args, name) is not None}
    )
    if args.category:
        values["categories"] = tuple(args.category)
    if args.few_shot is not None:
        values.update(mode="few-shot", shots=args.few_shot)
    if args.no_feature_cache:
        values["cache_features"] = False
    if "data_root" not in values:
        raise ValueError("no training data: pass --data-root DIR (or data_root in --config)")
    for key in ("data_root", "encoder_weights", "resume_from", "out_dir"):
        if values.get(key) is not None:
            values[key] = Path(values[key])
    categories = values.get("categories", ())
    values["categories"] = (categories,) if isinstance(categories, str) else tuple(categories)
    return TrainConfig(**values)


def read_train_yaml(path: Path, allowed: set[str]) -> dict:
    """The train options of a YAML file: a mapping whose keys are TrainConfig field names."""
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist; check the --config path")
    try:
        with path.open(encoding="utf-8") as handle:
            loaded = yaml.safe_load(handle) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not valid YAML; fix the syntax at the line shown:\n{exc}") from exc
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: expected a mapping of train options, got {type(loaded).__name__}")
    unknown = sorted(str(key) for key in set(loaded) - allowed)
    if unknown:
        raise ValueError(
            f"{path}: unknown key(s) {unknown}; allowed (TrainConfig fields): {', '.join(sorted(allowed))}"
        )
    return dict(loaded)


def train(args: argparse.Namespace) -> int:
    """Train an INP-Former on good images. One --category: single-class; several: one multi-class
    model; --few-shot K: K images per category, each expanded to the paper's 22 fixed views.
    The frozen encoder's features are computed once and cached (CPU speed). Writes checkpoint.pt
    and train_log.json to --out; --resume continues the same schedule from a checkpoint."""
    from export.train import train as run_training

    result = run_training(train_config_from(args), progress=not args.quiet)
    print(f"checkpoint: {result.checkpoint_path}")
    print(f"log:        {result.log_path}")
    print(
        f"steps {result.steps}/{result.total_steps} ({result.epochs_done:.1f} epochs), final loss "
        f"{result.final_loss:.4f}, {result.seconds / 60:.1f} min, stopped: {result.stop_reason}"
    )
    for note in result.notes:
        print(f"note: {note}")
    if result.stop_reason == "interrupted":
        print(f"interrupted: saved at step {result.steps}; continue with --resume {result.checkpoint_path}")
        return 130
    return 0


def evaluate(args: argparse.Namespace) -> int:
    """Image AUROC / AP / F1-max and pixel AUROC / AP / F1-max / AUPRO (FPR up to 0.3), per category
    and mean, with a PatchCore-style kNN baseline measured beside the model on the same encoder and
    inputs. Writes evaluation.json and evaluation.md."""
    from export.evaluate import EvalSettings
    from export.jobs import evaluate_job

    settings = EvalSettings(map_kind=args.map, knn_baseline=not args.no_knn)
    out_dir = args.out or Path(args.checkpoint).parent / "eval"
    _, json_path, md_path = evaluate_job(
        args.checkpoint,
        out_dir,
        data_root=args.data_root,
        categories=tuple(args.category or ()),
        settings=settings,
        encoder_weights=args.encoder_weights,
    )
    print(Path(md_path).read_text())
    print(f"written: {json_path} and {md_path}")
    return 0


def export(args: argparse.Namespace) -> int:
    """Write the ONNX artifact: uint8 (1, H, W, 3) RGB in; anomaly_map, pred_score, patch_features and
    inp_distance out; normalisation, network, map post-processing and score inside the graph;
    metadata (encoder, input size, pre-processing, training data, good-part score statistics)."""
    from export.jobs import export_job

    outcome = export_job(
        args.checkpoint,
        args.out,
        data_root=args.data_root,
        encoder_weights=args.encoder_weights,
        model_id=args.model_id,
    )
    stats = outcome.metadata.score_stats
    print(f"written: {outcome.path} (model id {outcome.metadata.model_id})")
    print(f"training good scores: n={stats.n} mean={stats.mean:.4f} p99={stats.p99:.4f}")
    return 0


def quantize(args: argparse.Namespace) -> int:
    """Build an FP16 or INT8 (static QDQ, calibrated on good images) artifact, evaluate it against the
    FP32 one on a labelled set, and write it only if no image or pixel AUROC drops by more than
    --max-drop points. Exit status 3 (and nothing written) when the gate refuses."""
    from export.quantize import QuantizeSettings, quantize_artifact

    root, names = _artifact_dataset(args.model, args.data_root, args.category)
    settings = QuantizeSettings(
        precision=args.precision,
        calibration_method=args.calibration,
        per_channel=not args.per_tensor,
        calibration_count=args.calibration_images,
        exclude_name_patterns=() if args.quantize_all else (tuple(args.keep_float) or None),
        max_drop_points=args.max_drop,
    )
    outcome = quantize_artifact(args.model, args.out, root, names, settings)
    _print_comparison(outcome)
    if args.report:
        doc = {
            "fp32": outcome.fp32_metrics,
            args.precision: outcome.quantized_metrics,
            "gate": dataclasses.asdict(outcome.gate),
            "settings": dataclasses.asdict(settings),
            "written": str(outcome.written) if outcome.written else None,
        }
        Path(args.report).write_text(json.dumps(doc, indent=2) + "\n")
    if outcome.written is None:
        print(f"refused: {args.out} was not written")
        return 3
    print(f"written: {outcome.written}")
    return 0


def _artifact_dataset(
    model: Path, data_root: Path | None, categories: list[str] | None
) -> tuple[Path, tuple]:
    from edge.model import contract
    from edge.model.onnx_file import read_metadata_props

    meta = read_metadata_props(Path(model))  # a missing or non-ONNX file: ModelLoadError naming it
    trained = json.loads(meta.get(contract.META_TRAINING_DATA, "{}"))
    root = data_root or (Path(trained["data_root"]) if "data_root" in trained else None)
    names = tuple(categories or trained.get("categories", ()))
    if root is None or not names:
        raise ValueError(f"{model}: no labelled set recorded; pass --data-root DIR --category NAME")
    return Path(root), names


def _print_comparison(outcome) -> None:
    rows = [("fp32", outcome.fp32_metrics["mean"]), ("quantized", outcome.quantized_metrics["mean"])]
    print(f"{'model':<10} {'I-AUROC':>8} {'P-AUROC':>8} {'AUPRO':>7}")
    for name, mean in rows:
        pixel = mean.get("pixel") or {}
        print(
            f"{name:<10} {100 * mean['image']['auroc']:8.2f} {100 * pixel.get('auroc', float('nan')):8.2f} "
            f"{100 * pixel.get('aupro', float('nan')):7.2f}"
        )
    print(outcome.gate.describe())


def benchmark(args: argparse.Namespace) -> int:
    """Quality benchmark on ../shared/datasets (mvtec_ad/bottle, glass_ad/glass, lookout_cookies/cookie):
    trains single-class models and one multi-class model on this CPU, evaluates each with the kNN
    baseline beside it, and writes benchmark.json / benchmark.md."""
    from export.benchmark import run_benchmark

    json_path, md_path = run_benchmark(
        args.datasets, args.out, epochs=args.epochs, only=args.only, progress=not args.quiet
    )
    print(Path(md_path).read_text())
    print(f"written: {json_path} and {md_path}")
    return 0


def speed(args: argparse.Namespace) -> int:
    """Time each model's FP32 artifact, INT8 artifact and bare network (encoder + INP head, no in-graph
    pre/post-processing) interleaved in one run, with the machine's matrix-multiply peak measured in
    the same run. Models: the EfficientNet-Lite0 INP-Former at 256 px, DINOv2-reg ViT-S/14 at 224 and
    ViT-B/14 at 392 (random weights: speed only). Writes speed.json and speed.md."""
    from edge.atomic import write_text_atomic
    from export.speed import render_speed, run_speed

    doc, json_path = run_speed(
        args.out,
        names=args.model,
        checkpoint=args.checkpoint,
        runs=args.runs,
        repeats=args.repeats,
        progress=not args.quiet,
    )
    table = render_speed(doc)
    write_text_atomic(Path(args.out) / "speed.md", table)
    print(table)
    print(f"written: {json_path}")
    return 0


def demo(args: argparse.Namespace) -> int:
    """The embedded default: draw a small set of parts with defects, train an INP-Former on the good
    ones (EfficientNet-Lite0, offline), evaluate it beside a kNN baseline, export the ONNX artifact,
    quantize it to INT8 behind the accuracy gate, and time both on this machine."""
    from export.demo import run_demo

    return run_demo(args.out, epochs=args.epochs)
