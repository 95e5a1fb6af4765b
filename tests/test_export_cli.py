"""End-to-end tests of `inp-export`: the real commands on a small drawn image set, in-process.

One model is trained once for the module (64 px, 3 epochs, EfficientNet-Lite0 with its packaged
weights) and shared by the evaluate / export tests.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from edge.model import contract
from export import cli
from export.cli_commands import train_config_from
from export.synthetic import SyntheticSpec, write_synthetic_dataset

REPO = Path(__file__).resolve().parents[1]
SPEC = SyntheticSpec(size_px=64, n_train=8, n_test_good=4, n_test_defect=4)
TRAIN_FLAGS = (
    "--category", "washer", "--epochs", "3", "--batch-size", "4", "--warmup-steps", "2",
    "--input-size", "64", "--resize", "64", "--threads", "1", "--quiet",
)  # fmt: skip


@dataclass(frozen=True)
class Run:
    """One in-process `inp-export` call."""

    code: int
    stdout: str
    stderr: str


def run_cli(*argv: str | Path) -> Run:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(arg) for arg in argv])
    return Run(code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The machine is shared: evaluate and export run on one thread here."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("parts")
    write_synthetic_dataset(root, SPEC)
    return root


@pytest.fixture(scope="module")
def trained(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Run]:
    out = tmp_path_factory.mktemp("run")
    return out, run_cli("train", "--data-root", data_root, *TRAIN_FLAGS, "--out", out)


@pytest.fixture(scope="module")
def checkpoint(trained: tuple[Path, Run]) -> Path:
    out, run = trained
    assert run.code == 0, run.stderr
    return out / "checkpoint.pt"


@pytest.fixture(scope="module")
def artifact(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Run]:
    path = tmp_path_factory.mktemp("artifact") / "model.onnx"
    return path, run_cli("export", "--checkpoint", checkpoint, "--out", path)


def read_log(out_dir: Path) -> dict:
    return json.loads((out_dir / "train_log.json").read_text())


def unit_range_values(result: dict) -> list[float]:
    return [value for level in ("image", "pixel") for value in result[level].values()]


def test_help_runs_as_a_module_and_lists_every_subcommand() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "export.cli", "--help"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    for name in ("train", "evaluate", "export", "quantize", "benchmark", "demo"):
        assert name in done.stdout


def test_train_writes_checkpoint_and_log(trained: tuple[Path, Run]) -> None:
    out, run = trained
    assert run.code == 0, run.stderr
    assert (out / "checkpoint.pt").is_file()
    log = read_log(out)
    assert (log["steps"], log["total_steps"], log["stop_reason"]) == (6, 6, "completed")
    assert log["training_data"]["mode"] == "full"
    assert [entry["epoch"] for entry in log["loss_history"]] == [1, 2, 3]
    assert "stopped: completed" in run.stdout


def test_evaluate_reports_model_and_knn_metrics_in_unit_range(checkpoint: Path, tmp_path: Path) -> None:
    run = run_cli("evaluate", "--checkpoint", checkpoint, "--out", tmp_path)
    assert run.code == 0, run.stderr
    report = json.loads((tmp_path / "evaluation.json").read_text())
    washer = report["categories"]["washer"]
    assert (washer["n_good"], washer["n_defect"]) == (4, 8)
    values = unit_range_values(washer["inp_former"]) + unit_range_values(washer["knn"])
    assert len(values) == 14
    assert all(0.0 <= value <= 1.0 for value in values)
    assert report["model"]["map_kind"] == "reconstruction"
    markdown = (tmp_path / "evaluation.md").read_text()
    assert "I-AUROC kNN" in markdown and "AUPRO INP" in markdown and "| washer |" in markdown


def test_evaluate_with_the_inp_distance_map(checkpoint: Path, tmp_path: Path) -> None:
    run = run_cli(
        "evaluate", "--checkpoint", checkpoint, "--out", tmp_path, "--map", "inp-distance", "--no-knn"
    )
    assert run.code == 0, run.stderr
    report = json.loads((tmp_path / "evaluation.json").read_text())
    assert report["model"]["map_kind"] == "inp-distance"
    washer = report["categories"]["washer"]
    assert washer["knn"] is None
    assert all(0.0 <= value <= 1.0 for value in unit_range_values(washer["inp_former"]))


def test_export_writes_an_artifact_that_onnxruntime_runs(artifact: tuple[Path, Run]) -> None:
    import onnxruntime as ort

    path, run = artifact
    assert run.code == 0, run.stderr
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert meta[contract.META_INPUT_SIZE] == "64x64"
    assert json.loads(meta[contract.META_SCORE_STATS])["n"] == SPEC.n_train
    image = np.random.default_rng(0).integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    outputs = dict(
        zip([o.name for o in session.get_outputs()], session.run(None, {"image": image}), strict=True)
    )
    assert outputs[contract.OUTPUT_ANOMALY_MAP].shape == (1, 64, 64)
    assert outputs[contract.OUTPUT_PRED_SCORE].shape == (1,)
    assert math.isfinite(float(outputs[contract.OUTPUT_PRED_SCORE][0]))


def test_yaml_config_trains_like_the_flags_and_flags_win(
    data_root: Path, trained: tuple[Path, Run], tmp_path: Path
) -> None:
    flag_out, _ = trained
    options = {
        "data_root": str(data_root),
        "categories": ["washer"],
        "epochs": 50,  # overridden by --epochs below
        "batch_size": 4,
        "warmup_steps": 2,
        "crop_px": 64,
        "resize_px": 64,
        "num_threads": 1,
        "out_dir": str(tmp_path / "yaml-run"),
    }
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump(options))
    run = run_cli("train", "--config", config, "--epochs", "3", "--quiet")
    assert run.code == 0, run.stderr
    from_yaml, from_flags = read_log(tmp_path / "yaml-run"), read_log(flag_out)
    for log in (from_yaml, from_flags):
        log["train_config"].pop("out_dir")
    assert from_yaml["train_config"] == from_flags["train_config"]
    losses = [[entry["loss"] for entry in log["loss_history"]] for log in (from_yaml, from_flags)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


def test_unknown_yaml_key_exits_2_naming_the_key(data_root: Path, tmp_path: Path) -> None:
    config = tmp_path / "train.yaml"
    config.write_text(f"data_root: {data_root}\nlearning_rate: 0.001\n")
    run = run_cli("train", "--config", config, "--quiet")
    assert run.code == 2
    assert "learning_rate" in run.stderr and str(config) in run.stderr
    assert "Traceback" not in run.stderr


def test_broken_yaml_exits_2_naming_the_file_and_line(tmp_path: Path) -> None:
    config = tmp_path / "train.yaml"
    config.write_text("data_root: /x\nepochs: [3\n")
    run = run_cli("train", "--config", config)
    assert run.code == 2
    assert str(config) in run.stderr and "line" in run.stderr


def test_a_single_yaml_category_is_one_category(data_root: Path, tmp_path: Path) -> None:
    config = tmp_path / "train.yaml"
    config.write_text(f"data_root: {data_root}\ncategories: washer\n")
    args = cli.build_parser().parse_args(["train", "--config", str(config)])
    assert train_config_from(args).categories == ("washer",)


def test_missing_data_root_exits_2_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder"
    run = run_cli("train", "--data-root", missing, "--quiet", "--out", tmp_path / "out")
    assert run.code == 2
    assert str(missing) in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "out" / "checkpoint.pt").exists()


def test_few_shot_run_records_the_mode_and_the_22_views(data_root: Path, tmp_path: Path) -> None:
    flags = [*TRAIN_FLAGS]
    flags[flags.index("--epochs") + 1] = "1"
    run = run_cli("train", "--data-root", data_root, *flags, "--few-shot", "1", "--out", tmp_path)
    assert run.code == 0, run.stderr
    data = read_log(tmp_path)["training_data"]
    assert (data["mode"], data["shots"], data["num_images"], data["num_items"]) == ("few-shot", 1, 1, 22)


def test_resume_finishes_a_stopped_run_and_refuses_other_settings(data_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({"stop_after_epochs": 1}))
    common = ("train", "--data-root", data_root, *TRAIN_FLAGS, "--out", out)
    first = run_cli(*common, "--config", config)
    assert first.code == 0, first.stderr
    assert (read_log(out)["steps"], read_log(out)["stop_reason"]) == (2, "stop_after_epochs")

    refused = run_cli(*common, "--resume", out / "checkpoint.pt", "--lr", "0.01")
    assert refused.code == 2 and "lr" in refused.stderr

    resumed = run_cli(*common, "--resume", out / "checkpoint.pt")
    assert resumed.code == 0, resumed.stderr
    log = read_log(out)
    assert (log["steps"], log["stop_reason"]) == (6, "completed")
    assert [entry["epoch"] for entry in log["loss_history"]] == [1, 2, 3]


def test_missing_checkpoint_exits_2_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "checkpoint.pt"
    for command in ("evaluate", "export"):
        run = run_cli(command, "--checkpoint", missing, "--out", tmp_path / "out.onnx")
        assert run.code == 2 and str(missing) in run.stderr, command


def test_unreadable_model_for_quantize_exits_2_naming_it(tmp_path: Path) -> None:
    garbage = tmp_path / "model.onnx"
    garbage.write_bytes(b"not an onnx model")
    for model in (garbage, tmp_path / "missing.onnx"):
        run = run_cli("quantize", "--model", model, "--out", tmp_path / "int8.onnx")
        assert run.code == 2 and str(model) in run.stderr and "Traceback" not in run.stderr


def test_interrupt_exits_130(monkeypatch: pytest.MonkeyPatch, data_root: Path, tmp_path: Path) -> None:
    import export.train

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(export.train, "train", interrupted)
    run = run_cli("train", "--data-root", data_root, "--quiet", "--out", tmp_path)
    assert run.code == 130 and "interrupted" in run.stderr


@pytest.mark.slow
def test_demo_runs_the_six_steps_and_writes_the_artifact(tmp_path: Path) -> None:
    run = run_cli("demo", "--out", tmp_path, "--epochs", "2")
    assert run.code == 0, run.stderr
    for step in range(1, 7):
        assert f"[{step}/6]" in run.stdout
    assert (tmp_path / "model.onnx").is_file()
    assert (tmp_path / "eval" / "evaluation.json").is_file()
