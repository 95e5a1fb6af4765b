"""The embedded default job: everything from drawn images to a timed INT8 artifact, offline.

1. draw a small MVTec-layout set of washers with scratches and spots (export/synthetic.py);
2. train an INP-Former on the good ones (EfficientNet-Lite0 with its packaged ImageNet weights);
3. evaluate it beside the kNN baseline; 4. export the ONNX artifact; 5. quantize it to INT8 behind
the accuracy gate; 6. time FP32 and INT8 with `inp-edge bench-model`'s code on this machine.
"""

from __future__ import annotations

from pathlib import Path

from export.synthetic import SyntheticSpec, write_synthetic_dataset

DEMO_INPUT_PX = 128  # small so the whole demo runs in a few minutes on two CPU cores


def run_demo(out: Path, *, epochs: int = 40) -> int:
    from edge.bench import bench_model, format_table
    from edge.model.session import SessionSettings
    from export.evaluate import EvalSettings
    from export.jobs import evaluate_job, export_job
    from export.quantize import QuantizeSettings, quantize_artifact
    from export.train import TrainConfig, train

    out = Path(out)
    spec = SyntheticSpec(size_px=DEMO_INPUT_PX)
    data_root = out / "data"
    write_synthetic_dataset(data_root, spec)
    print(f"[1/6] drew {spec.n_train} good training parts and a test set in {data_root}")

    config = TrainConfig(
        data_root=data_root,
        categories=(spec.category,),
        epochs=epochs,
        batch_size=4,
        warmup_steps=10,
        crop_px=DEMO_INPUT_PX,
        resize_px=DEMO_INPUT_PX,
        out_dir=out / "model",
    )
    result = train(config)
    print(f"[2/6] trained {result.steps} steps in {result.seconds:.0f} s: {result.checkpoint_path}")

    report, _, md_path = evaluate_job(
        result.checkpoint_path, out / "eval", settings=EvalSettings(batch_size=4)
    )
    print(f"[3/6] evaluation ({md_path}):\n{Path(md_path).read_text()}")

    fp32 = export_job(result.checkpoint_path, out / "model.onnx").path
    print(f"[4/6] exported {fp32}")

    int8 = out / "model-int8.onnx"
    outcome = quantize_artifact(
        fp32, int8, data_root, (spec.category,), QuantizeSettings(calibration_count=8)
    )
    print(f"[5/6] INT8: {outcome.gate.describe()}; written: {outcome.written}")

    print("[6/6] speed on this machine (one image per call):")
    for path in [fp32] + ([outcome.written] if outcome.written else []):
        bench = bench_model(
            path, SessionSettings(providers=("cpu",)), runs=20, warmup=3, repeats=3, peak=False
        )
        print(format_table(bench))
    return 0
