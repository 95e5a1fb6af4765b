"""Optimiser, schedule, checkpoints and the training loop, on a tiny frozen encoder."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import Tensor, nn

from edge.errors import ConfigError, InpEdgeError
from export.checkpoint import FORMAT, CheckpointError, load_model, read_checkpoint
from export.model.base import EncoderSpec, FrozenEncoder
from export.optim import StableAdamW, warm_cosine_lr, warm_cosine_scheduler
from export.train import TrainConfig, epoch_order, train

# ---------------------------------------------------------------- StableAdamW


def _step(optimizer: StableAdamW, param: nn.Parameter, grad: list[float]) -> None:
    param.grad = torch.tensor(grad, dtype=torch.float64)
    optimizer.step()


def test_first_step_matches_the_hand_computation() -> None:
    param = nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    optimizer = StableAdamW([param], lr=0.1, weight_decay=0.01)
    _step(optimizer, param, [0.5, -0.1])
    # decay: p·(1 − 0.1·0.01); m̂ = g, √v̂ = |g| → step = lr·g/|g| = ±0.1 (RMS 1: no clipping)
    torch.testing.assert_close(param.data, torch.tensor([0.999 - 0.1, -1.998 + 0.1], dtype=torch.float64))


def test_update_clipping_divides_the_step_by_the_rms_ratio() -> None:
    param = nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    optimizer = StableAdamW([param], lr=0.1, weight_decay=0.01)
    _step(optimizer, param, [0.01, -0.01])
    after_first = param.data.clone()
    _step(optimizer, param, [3.0, -2.0])
    # Hand computation of step 2 (amsgrad max is v itself here, v grows).
    g1, g2 = np.array([0.01, -0.01]), np.array([3.0, -2.0])
    m = 0.9 * 0.1 * g1 + 0.1 * g2
    v = 0.999 * 0.001 * g1**2 + 0.001 * g2**2
    denom = np.sqrt(v) / math.sqrt(1 - 0.999**2) + 1e-10
    rms = math.sqrt(np.mean((g2 / denom) ** 2))
    assert rms > 1.3  # the clipping really kicks in
    step_size = 0.1 / (1 - 0.9**2) / rms
    expected = after_first.numpy() * (1 - 0.1 * 0.01) - step_size * m / denom
    np.testing.assert_allclose(param.data.numpy(), expected, rtol=1e-12)


def test_without_clipping_it_equals_torch_adamw_with_amsgrad() -> None:
    ours = nn.Parameter(torch.tensor([0.3, -0.7, 1.1]))
    reference = nn.Parameter(ours.detach().clone())
    stable = StableAdamW([ours], lr=0.01, weight_decay=0.1, clip_threshold=1e9)
    adamw = torch.optim.AdamW([reference], lr=0.01, weight_decay=0.1, eps=1e-10, amsgrad=True)
    for grad in ([0.1, -0.2, 0.3], [1.0, 0.5, -0.1], [0.01, 0.02, 0.03]):  # the last one shrinks: max kept
        for p, opt in ((ours, stable), (reference, adamw)):
            p.grad = torch.tensor(grad)
            opt.step()
    torch.testing.assert_close(ours.data, reference.data, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------- schedule


def test_schedule_warms_up_linearly_then_follows_a_monotone_cosine() -> None:
    lrs = [warm_cosine_lr(s, base_lr=1e-3, final_lr=1e-4, warmup_steps=10, total_steps=51) for s in range(60)]
    assert lrs[0] == 0.0 and lrs[5] == pytest.approx(5e-4) and lrs[10] == pytest.approx(1e-3)
    assert lrs[50] == pytest.approx(1e-4) and lrs[59] == pytest.approx(1e-4)
    assert lrs[30] == pytest.approx(0.5 * (1e-3 + 1e-4))
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:11], strict=True))
    assert all(a > b for a, b in zip(lrs[10:50], lrs[11:51], strict=True))


def test_schedule_rejects_a_warmup_longer_than_the_run() -> None:
    with pytest.raises(ValueError, match="warmup_steps 100"):
        warm_cosine_lr(0, warmup_steps=100, total_steps=50)


def test_lambda_scheduler_follows_the_schedule() -> None:
    optimizer = StableAdamW([nn.Parameter(torch.zeros(1))])
    scheduler = warm_cosine_scheduler(optimizer, base_lr=2e-3, final_lr=2e-4, warmup_steps=3, total_steps=9)
    seen = []
    for _ in range(9):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    expected = [
        warm_cosine_lr(s, base_lr=2e-3, final_lr=2e-4, warmup_steps=3, total_steps=9) for s in range(9)
    ]
    assert seen == pytest.approx(expected)


# ---------------------------------------------------------------- training


class TinyEncoder(FrozenEncoder):
    """A fixed random conv encoder: 4×4 patches, 4 residual taps of 16 channels."""

    def __init__(self) -> None:
        super().__init__()
        self.spec = EncoderSpec(
            name="tiny_test",
            embed_dim=16,
            num_heads=2,
            num_taps=4,
            groups=((0, 1), (2, 3)),
            input_size_px=32,
            resize_px=36,
            stride_px=4,
            mean_rgb=(0.5, 0.5, 0.5),
            std_rgb=(0.25, 0.25, 0.25),
        )
        self.patch_embed = nn.Conv2d(3, 16, kernel_size=4, stride=4)
        self.layers = nn.ModuleList(nn.Conv2d(16, 16, 3, padding=1) for _ in range(4))
        generator = torch.Generator().manual_seed(99)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=generator) * 0.15)
        self.requires_grad_(False)

    def taps(self, images: Tensor) -> list[Tensor]:
        x = self.patch_embed((images - 0.5) / 0.25)
        outputs = []
        for layer in self.layers:
            x = x + torch.tanh(layer(x))
            outputs.append(x.flatten(2).transpose(1, 2))
        return outputs


@pytest.fixture
def parts(tmp_path: Path) -> Path:
    """12 textured 40×40 'good parts' written as PNG."""
    folder = tmp_path / "parts"
    folder.mkdir()
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:40, 0:40] / 40.0
    for i in range(12):
        phase = rng.uniform(0, 2 * np.pi, 3)
        channels = [np.sin(2 * np.pi * (3 * xx + 2 * yy) + p) for p in phase]
        image = (np.stack(channels, axis=2) * 90 + 128 + rng.normal(0, 8, (40, 40, 3))).clip(0, 255)
        cv2.imwrite(str(folder / f"part{i:02d}.png"), image.astype(np.uint8))
    return folder


def _config(parts: Path, out_dir: Path, **changes: object) -> TrainConfig:
    base = TrainConfig(
        data_root=parts,
        layout="folder",
        encoder="tiny_test",  # TinyEncoder, passed to train() in its place
        epochs=4,
        batch_size=4,
        lr=5e-3,
        final_lr=5e-4,
        warmup_steps=2,
        num_threads=1,
        checkpoint_every_epochs=0,
        out_dir=out_dir,
    )
    return dataclasses.replace(base, **changes)


def test_tiny_training_run_lowers_the_loss(parts: Path, tmp_path: Path) -> None:
    result = train(_config(parts, tmp_path / "run", epochs=8), progress=False, encoder=TinyEncoder())
    history = [entry["loss"] for entry in read_checkpoint(result.checkpoint_path).meta.progress.loss_history]
    assert (result.steps, result.total_steps, result.stop_reason) == (24, 24, "completed")
    assert len(history) == 8 and history[-1] < 0.7 * history[0]
    assert result.log_path.is_file() and result.final_loss == history[-1]


def _resume_and_compare(parts: Path, tmp_path: Path, stopped: Path, whole: Path) -> tuple[dict, dict]:
    """Resume the stopped run to the end; its weights must equal the uninterrupted run's."""
    resumed = train(
        _config(parts, tmp_path / "split", resume_from=stopped), progress=False, encoder=TinyEncoder()
    )
    a, b = read_checkpoint(whole), read_checkpoint(resumed.checkpoint_path)
    assert b.meta.progress.step == a.meta.progress.step == 12
    for key, value in a.trainable_state.items():
        torch.testing.assert_close(b.trainable_state[key], value, rtol=0, atol=1e-6)
    return a, b


def test_resume_from_a_mid_checkpoint_matches_an_uninterrupted_run(parts: Path, tmp_path: Path) -> None:
    whole = train(_config(parts, tmp_path / "whole"), progress=False, encoder=TinyEncoder())
    half = train(
        _config(parts, tmp_path / "split", stop_after_epochs=2), progress=False, encoder=TinyEncoder()
    )
    assert (half.steps, half.stop_reason) == (6, "stop_after_epochs")
    a, b = _resume_and_compare(parts, tmp_path, half.checkpoint_path, whole.checkpoint_path)
    losses = [[e["loss"] for e in c.meta.progress.loss_history] for c in (a, b)]
    assert losses[1] == pytest.approx(losses[0])


def test_resume_with_other_settings_names_the_field(parts: Path, tmp_path: Path) -> None:
    half = train(_config(parts, tmp_path / "run", stop_after_epochs=1), progress=False, encoder=TinyEncoder())
    changed = _config(parts, tmp_path / "run", lr=1e-2, resume_from=half.checkpoint_path)
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
        train(_config(parts, tmp_path / "run", resume_from=broken), progress=False, encoder=TinyEncoder())
    assert str(broken) in str(info.value) and built == []
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_max_minutes_stops_early_and_saves(parts: Path, tmp_path: Path) -> None:
    result = train(_config(parts, tmp_path / "run", max_minutes=0.0), progress=False, encoder=TinyEncoder())
    assert (result.stop_reason, result.steps) == ("max_minutes", 1)
    assert read_checkpoint(result.checkpoint_path).meta.progress.step == 1


def test_few_shot_cached_features_train_like_live_encoding(parts: Path, tmp_path: Path) -> None:
    states = []
    for cache in (True, False):
        config = _config(parts, tmp_path / f"cache{cache}", mode="few-shot", shots=2, epochs=2, batch_size=16)
        result = train(
            dataclasses.replace(config, cache_features=cache), progress=False, encoder=TinyEncoder()
        )
        assert result.total_steps == 4  # 2 shots × 22 views = 44 items → 2 batches of 16 per epoch
        states.append(read_checkpoint(result.checkpoint_path).trainable_state)
    for key, value in states[0].items():
        torch.testing.assert_close(states[1][key], value, rtol=1e-4, atol=1e-5)


def test_a_set_smaller_than_the_batch_is_one_whole_batch(parts: Path, tmp_path: Path) -> None:
    result = train(
        _config(parts, tmp_path / "run", batch_size=32, epochs=3), progress=False, encoder=TinyEncoder()
    )
    assert result.total_steps == 3 and any("whole set" in note for note in result.notes)


def test_epoch_order_is_a_seeded_permutation() -> None:
    order = epoch_order(10, seed=1, epoch=3)
    assert sorted(order) == list(range(10)) and order == epoch_order(10, seed=1, epoch=3)
    assert order != epoch_order(10, seed=1, epoch=4)


# ---------------------------------------------------------------- checkpoints


def test_load_model_rebuilds_the_trained_model(parts: Path, tmp_path: Path) -> None:
    result = train(_config(parts, tmp_path / "run", epochs=1), progress=False, encoder=TinyEncoder())
    loaded = load_model(result.checkpoint_path, encoder=TinyEncoder())
    saved = read_checkpoint(result.checkpoint_path).trainable_state
    for key, value in loaded.model.trainable_state_dict().items():
        assert torch.equal(value, saved[key])
    assert (loaded.meta.transform.resize_px, loaded.meta.transform.crop_px) == (36, 32)
    assert loaded.meta.training_data.num_images == 12 and loaded.meta.training_data.layout == "folder"
    assert loaded.meta.train_config == _config(parts, tmp_path / "run", epochs=1)
    assert (loaded.meta.head.num_inps, loaded.meta.encoder.name) == (6, "tiny_test")
    rec = loaded.model(torch.rand(1, 3, 32, 32))
    assert rec.decoder_groups[0].shape == (1, 64, 16)


def test_corrupt_checkpoint_error_names_the_file_and_the_fix(parts: Path, tmp_path: Path) -> None:
    result = train(_config(parts, tmp_path / "run", epochs=1), progress=False, encoder=TinyEncoder())
    data = result.checkpoint_path.read_bytes()
    broken = tmp_path / "broken.pt"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="retrain") as info:
        load_model(broken, encoder=TinyEncoder())
    assert str(broken) in str(info.value) and isinstance(info.value, InpEdgeError)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda p: p["head"].update(num_blocks=3), r"'head' has unknown \['num_blocks'\]"),
        (lambda p: p["transform"].update(crop_px="32"), r"transform\.crop_px='32' is not int"),
        (
            lambda p: p["training_data"].pop("fingerprint") and p["training_data"].pop("layout"),
            r"'training_data' lacks \['layout'\]",
        ),
        (lambda p: p.update(learning_rate=0.1), r"unknown keys \['learning_rate'\]"),
        (
            lambda p: p["training_data"].update(categories="bottle"),
            r"training_data\.categories='bottle' is not tuple\[str, \.\.\.\]",
        ),
        (
            lambda p: p["training_data"].update(images_per_category={"b": "many"}),
            r"training_data\.images_per_category=\{'b': 'many'\} is not Mapping\[str, int\]",
        ),
        (lambda p: p["encoder_spec"].update(groups=[[0, 1], [2, "3"]]), r"encoder_spec\.groups="),
        (lambda p: p["transform"].update(crop_px=4 * p["transform"]["resize_px"]), r"'transform' is invalid"),
    ],
    ids=[
        "unknown-field",
        "wrong-type",
        "missing-field",
        "unknown-key",
        "string-for-a-tuple",
        "mapping-of-wrong-values",
        "nested-tuple-item",
        "value-the-record-refuses",
    ],
)
def test_checkpoint_metadata_faults_name_the_key(parts: Path, tmp_path: Path, edit, message: str) -> None:
    result = train(_config(parts, tmp_path / "run", epochs=1), progress=False, encoder=TinyEncoder())
    payload = torch.load(result.checkpoint_path, weights_only=True)
    edit(payload)
    edited = tmp_path / "edited.pt"
    torch.save(payload, edited)
    with pytest.raises(CheckpointError, match=message) as info:
        read_checkpoint(edited)
    assert str(edited) in str(info.value) and info.value.fix


def test_checkpoint_metadata_round_trips_through_the_payload(parts: Path, tmp_path: Path) -> None:
    from export.checkpoint import CheckpointMeta

    result = train(_config(parts, tmp_path / "run", epochs=1), progress=False, encoder=TinyEncoder())
    meta = read_checkpoint(result.checkpoint_path).meta
    assert CheckpointMeta.from_payload(meta.to_payload(), result.checkpoint_path) == meta
    assert meta.encoder_spec == TinyEncoder().spec and meta.progress.total_steps == 3


def test_missing_checkpoint_error_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=f"no checkpoint at {tmp_path / 'nope.pt'}"):
        read_checkpoint(tmp_path / "nope.pt")


def test_foreign_file_error_names_the_expected_format(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(CheckpointError, match=FORMAT):
        read_checkpoint(path)


@pytest.mark.slow
def test_real_efficientnet_trains_on_a_folder_and_reloads(parts: Path, tmp_path: Path) -> None:
    config = _config(parts, tmp_path / "run", encoder="efficientnet_lite0", epochs=2, crop_px=64)
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
    config = _config(
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

    whole = train(_config(parts, tmp_path / "whole"), progress=False, encoder=TinyEncoder())
    real_step = train_module._Run.train_step
    calls = {"n": 0}

    def step_then_press_ctrl_c(self, indices):
        calls["n"] += 1
        if calls["n"] == 5:  # the operator presses Ctrl-C during the fifth step
            signal.raise_signal(signal.SIGINT)
        return real_step(self, indices)

    monkeypatch.setattr(train_module._Run, "train_step", step_then_press_ctrl_c)
    stopped = train(_config(parts, tmp_path / "split"), progress=False, encoder=TinyEncoder())
    monkeypatch.setattr(train_module._Run, "train_step", real_step)
    assert (stopped.stop_reason, stopped.steps) == ("interrupted", 5)
    assert read_checkpoint(stopped.checkpoint_path).meta.progress.step == 5
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored

    _resume_and_compare(parts, tmp_path, stopped.checkpoint_path, whole.checkpoint_path)
