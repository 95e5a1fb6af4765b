"""`inp-export` refuses bad input with exit 2 and a fix, nothing written; a bug keeps its traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from export import cli
from export.commands.train import ENCODER_CHOICES, train_config_from
from export.synthetic import write_synthetic_dataset
from tests.export_cli_support import SPEC, TRAIN_FLAGS, run_cli


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("parts")
    write_synthetic_dataset(root, SPEC)
    return root


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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("data_root: /x\nepochs: 3\nepochs: 4\n", ("epochs: is set twice (first at line 2)", "[line 3]")),
        ("data_root: /x\nencoder: resnet50\n", ("encoder is 'resnet50', allowed: efficientnet_lite0",)),
        ("- data_root: /x\n", ("holds a list",)),
    ],
    ids=["duplicate-key", "unknown-encoder", "not-a-mapping"],
)
def test_a_faulty_yaml_config_exits_2_saying_what_and_where(tmp_path: Path, text: str, expected) -> None:
    config = tmp_path / "train.yaml"
    config.write_text(text)
    run = run_cli("train", "--config", config, "--quiet", "--out", tmp_path / "out")
    assert run.code == 2 and "Traceback" not in run.stderr
    assert all(part in run.stderr for part in expected), run.stderr
    assert not (tmp_path / "out").exists()


def test_a_single_yaml_category_is_one_category(data_root: Path, tmp_path: Path) -> None:
    config = tmp_path / "train.yaml"
    config.write_text(f"data_root: {data_root}\ncategories: washer\n")
    args = cli.build_parser().parse_args(["train", "--config", str(config)])
    assert train_config_from(args).categories == ("washer",)


def test_missing_data_root_exits_2_naming_the_path_and_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder"
    run = run_cli("train", "--data-root", missing, "--quiet", "--out", tmp_path / "out")
    assert run.code == 2
    assert str(missing) in run.stderr and "fix:" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "out" / "checkpoint.pt").exists()


def test_corrupt_resume_checkpoint_exits_2_before_any_work(data_root: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    run = run_cli(
        "train", "--data-root", data_root, *TRAIN_FLAGS, "--resume", broken, "--out", tmp_path / "out"
    )
    assert run.code == 2 and str(broken) in run.stderr and "fix:" in run.stderr
    assert "Traceback" not in run.stderr and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["speed", "--model", "effl0", "--out", "speed"],
        ["benchmark", "--only", "bottel", "--out", "bench"],
        ["train", "--data-root", ".", "--encoder", "resnet18", "--out", "run"],
        ["quantize", "--model", "m.onnx", "--out", "q.onnx", "--precision", "int4"],
        ["quantize", "--model", "m.onnx", "--out", "q.onnx", "--calibration", "kl"],
        ["evaluate", "--checkpoint", "c.pt", "--map", "residual", "--out", "eval"],
        ["evaluate", "--checkpoint", "c.pt", "--model", "m.onnx", "--out", "eval"],
        ["speed", "--model", "effl0-256", "--artifact", "m.onnx", "--out", "speed"],
    ],
    ids=[
        "speed-model",
        "benchmark-only",
        "encoder",
        "precision",
        "calibration",
        "map",
        "two-models",
        "model-and-artifact",
    ],
)
def test_a_typo_or_a_clash_in_the_options_is_a_usage_error_and_nothing_is_written(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    run = run_cli(*argv)
    assert run.code == 2
    assert "invalid choice" in run.stderr or "not allowed with" in run.stderr
    assert list(tmp_path.iterdir()) == []  # no report, no empty folder


def test_the_train_encoder_choices_are_the_encoder_table() -> None:
    from export.model.encoders import ENCODER_NAMES

    assert ENCODER_CHOICES == ENCODER_NAMES


@pytest.mark.parametrize("bug", [ValueError("a bug"), KeyError("a bug")], ids=["ValueError", "KeyError"])
def test_a_bug_in_a_command_keeps_its_traceback(
    bug: Exception, monkeypatch: pytest.MonkeyPatch, data_root: Path, tmp_path: Path
) -> None:
    import export.train

    def broken(*args, **kwargs):
        raise bug

    monkeypatch.setattr(export.train, "train", broken)
    with pytest.raises(type(bug)):
        cli.main(["train", "--data-root", str(data_root), "--quiet", "--out", str(tmp_path)])


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
