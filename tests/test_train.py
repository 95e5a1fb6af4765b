"""The training loop on a tiny frozen encoder: loss, resume, stops, few-shot, config checks."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from edge.errors import ConfigError
from export.checkpoint import CheckpointError, load_model, read_checkpoint
from export.train import TrainConfig, epoch_order, train
from tests.train_support import TinyEncoder, tiny_config, write_parts


@pytest.fixture
def parts(tmp_path: Path) -> Path:
    return write_parts(tmp_path)


# ---------------------------------------------------------------- training


def test_tiny_training_run_lowers_the_loss(parts: Path, tmp_path: Path) -> None:
    result = train(tiny_config(parts, tmp_path / "run", epochs=8), progress=False, encoder=TinyEncoder())
    history = [entry["loss"] for entry in read_checkpoint(result.checkpoint_path).meta.progress.loss_history]
    assert (result.steps, result.total_steps, result.stop_reason) == (24, 24, "completed")
    assert len(history) == 8 and history[-1] < 0.7 * history[0]
    assert result.log_path.is_file() and result.final_loss == history[-1]


def _resume_and_compare(parts: Path, tmp_path: Path, stopped: Path, whole: Path) -> tuple[dict, dict]:
    """Resume the stopped run to the end; its weights must equal the uninterrupted run's."""
    resumed = train(
        tiny_config(parts, tmp_path / "split", resume_from=stopped), progress=False, encoder=TinyEncoder()
    )
    a, b = read_checkpoint(whole), read_checkpoint(resumed.checkpoint_path)
    assert b.meta.progress.step == a.meta.progress.step == 12
    for key, value in a.trainable_state.items():
        torch.testing.assert_close(b.trainable_state[key], value, rtol=0, atol=1e-6)
    return a, b


def test_resume_from_a_mid_checkpoint_matches_an_uninterrupted_run(parts: Path, tmp_path: Path) -> None:
    whole = train(tiny_config(parts, tmp_path / "whole"), progress=False, encoder=TinyEncoder())
    half = train(
        tiny_config(parts, tmp_path / "split", stop_after_epochs=2), progress=False, encoder=TinyEncoder()
    )
    assert (half.steps, half.stop_reason) == (6, "stop_after_epochs")
    a, b = _resume_and_compare(parts, tmp_path, half.checkpoint_path, whole.checkpoint_path)
    losses = [[e["loss"] for e in c.meta.progress.loss_history] for c in (a, b)]
    assert losses[1] == pytest.approx(losses[0])


def test_resume_with_other_settings_names_the_field(parts: Path, tmp_path: Path) -> None:
    half = train(
        tiny_config(parts, tmp_path / "run", stop_after_epochs=1), progress=False, encoder=TinyEncoder()
    )
    changed = tiny_config(parts, tmp_path / "run", lr=1e-2, resume_from=half.checkpoint_path)
    with pytest.raises(ConfigError, match="lr: checkpoint 0.005, now 0.01") as info:
        train(changed, progress=False, encoder=TinyEncoder())
    assert "without --resume" in info.value.fix


def test_corrupt_resume_checkpoint_is_refused_before_the_feature_cache_is_built(
    parts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from export import train as train_module

    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"PK\x03\x04 not really a checkpoint")
    built = []
    monkeypatch.setattr(train_module, "_make_source", lambda *args, **kwargs: built.append(1))
    with pytest.raises(CheckpointError, match="not a readable checkpoint") as info:
        train(tiny_config(parts, tmp_path / "run", resume_from=broken), progress=False, encoder=TinyEncoder())
    assert str(broken) in str(info.value) and built == []
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_max_minutes_stops_early_and_saves(parts: Path, tmp_path: Path) -> None:
    result = train(
        tiny_config(parts, tmp_path / "run", max_minutes=0.0), progress=False, encoder=TinyEncoder()
    )
    assert (result.stop_reason, result.steps) == ("max_minutes", 1)
    assert read_checkpoint(result.checkpoint_path).meta.progress.step == 1


def test_few_shot_cached_features_train_like_live_encoding(parts: Path, tmp_path: Path) -> None:
    states = []
    for cache in (True, False):
        config = tiny_config(
            parts, tmp_path / f"cache{cache}", mode="few-shot", shots=2, epochs=2, batch_size=16
        )
        result = train(
            dataclasses.replace(config, cache_features=cache), progress=False, encoder=TinyEncoder()
        )
        assert result.total_steps == 4  # 2 shots × 22 views = 44 items → 2 batches of 16 per epoch
        states.append(read_checkpoint(result.checkpoint_path).trainable_state)
    for key, value in states[0].items():
        torch.testing.assert_close(states[1][key], value, rtol=1e-4, atol=1e-5)


def test_a_set_smaller_than_the_batch_is_one_whole_batch(parts: Path, tmp_path: Path) -> None:
    result = train(
        tiny_config(parts, tmp_path / "run", batch_size=32, epochs=3), progress=False, encoder=TinyEncoder()
    )
    assert result.total_steps == 3 and any("whole set" in note for note in result.notes)


def test_epoch_order_is_a_seeded_permutation() -> None:
    order = epoch_order(10, seed=1, epoch=3)
    assert sorted(order) == list(range(10)) and order == epoch_order(10, seed=1, epoch=3)
    assert order != epoch_order(10, seed=1, epoch=4)


@pytest.mark.slow
def test_real_efficientnet_trains_on_a_folder_and_reloads(parts: Path, tmp_path: Path) -> None:
    config = tiny_config(parts, tmp_path / "run", encoder="efficientnet_lite0", epochs=2, crop_px=64)
    result = train(config, progress=False)
    loaded = load_model(result.checkpoint_path)
    assert loaded.meta.transform.crop_px == 64 and math.isfinite(result.final_loss)
    assert loaded.model(torch.rand(1, 3, 64, 64)).decoder_groups[0].shape == (1, 64, 232)


def test_invalid_config_lists_every_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig(data_root=tmp_path, mode="zero-shot", batch_size=0, final_lr=1.0)
    message = str(info.value)
    assert "mode is 'zero-shot', allowed: full, few-shot" in message
    assert "batch_size must be at least 1" in message and "final_lr 1.0" in message


def test_an_unknown_encoder_name_is_refused_before_any_work(tmp_path: Path) -> None:
    config = TrainConfig(data_root=tmp_path / "does-not-exist", encoder="resnet50", out_dir=tmp_path / "run")
    with pytest.raises(
        ConfigError, match="encoder is 'resnet50', allowed: efficientnet_lite0, dinov2_vits14_reg4"
    ):
        train(config, progress=False)
    assert not (tmp_path / "run").exists()


def test_several_categories_train_one_few_shot_model(parts: Path, tmp_path: Path) -> None:
    root = tmp_path / "mvtec"
    for category, files in (("alpha", sorted(parts.iterdir())[:5]), ("beta", sorted(parts.iterdir())[5:])):
        good = root / category / "train" / "good"
        good.mkdir(parents=True)
        for f in files:
            (good / f.name).write_bytes(f.read_bytes())
    config = tiny_config(
        root, tmp_path / "run", layout="mvtec", mode="few-shot", shots=1, epochs=1, batch_size=16
    )
    result = train(config, progress=False, encoder=TinyEncoder())
    summary = read_checkpoint(result.checkpoint_path).meta.training_data
    assert summary.categories == ("alpha", "beta") and summary.images_per_category == {"alpha": 1, "beta": 1}
    assert summary.num_items == 44 and len(summary.files) == 2 and result.total_steps == 2


def test_ctrl_c_finishes_the_step_saves_and_resumes_exactly(
    parts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import signal

    from export import train as train_module

    whole = train(tiny_config(parts, tmp_path / "whole"), progress=False, encoder=TinyEncoder())
    real_step = train_module._Run.train_step
    calls = {"n": 0}

    def step_then_press_ctrl_c(self, indices):
        calls["n"] += 1
        if calls["n"] == 5:  # the operator presses Ctrl-C during the fifth step
            signal.raise_signal(signal.SIGINT)
        return real_step(self, indices)

    monkeypatch.setattr(train_module._Run, "train_step", step_then_press_ctrl_c)
    stopped = train(tiny_config(parts, tmp_path / "split"), progress=False, encoder=TinyEncoder())
    monkeypatch.setattr(train_module._Run, "train_step", real_step)
    assert (stopped.stop_reason, stopped.steps) == ("interrupted", 5)
    assert read_checkpoint(stopped.checkpoint_path).meta.progress.step == 5
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored

    _resume_and_compare(parts, tmp_path, stopped.checkpoint_path, whole.checkpoint_path)
