"""StableAdamW and the warm-up + cosine schedule (export/optim.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from export.optim import StableAdamW, warm_cosine_lr, warm_cosine_scheduler

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
