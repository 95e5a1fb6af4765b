"""StableAdamW and the warm-up + cosine learning-rate schedule (INP_FORMER.md §7).

StableAdamW is AdamW (decoupled weight decay, amsgrad) with AdaFactor-style update clipping: each
tensor's step is divided by max(1, RMS(grad / denom) / clip_threshold).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import Tensor
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


class StableAdamW(Optimizer):
    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        *,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-10,
        weight_decay: float = 1e-4,
        amsgrad: bool = True,
        clip_threshold: float = 1.0,
    ) -> None:
        if lr < 0 or eps < 0 or weight_decay < 0 or clip_threshold <= 0:
            raise ValueError(
                f"invalid StableAdamW settings lr={lr}, eps={eps}, weight_decay={weight_decay}, "
                f"clip_threshold={clip_threshold}: lr, eps and weight_decay must be >= 0, clip_threshold > 0"
            )
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            clip_threshold=clip_threshold,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p, group)
        return loss

    def _update(self, p: Tensor, group: dict) -> None:
        if p.grad.is_sparse:
            raise RuntimeError("StableAdamW does not support sparse gradients")
        grad = p.grad
        state = self.state[p]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = torch.zeros_like(p)
        beta1, beta2 = group["betas"]
        state["step"] += 1
        step = state["step"]
        lr = group["lr"]

        p.mul_(1.0 - lr * group["weight_decay"])
        state["exp_avg"].mul_(beta1).add_(grad, alpha=1.0 - beta1)
        state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
        second = state["exp_avg_sq"]
        if group["amsgrad"]:
            torch.maximum(state["max_exp_avg_sq"], second, out=state["max_exp_avg_sq"])
            second = state["max_exp_avg_sq"]
        denom = (second.sqrt() / math.sqrt(1.0 - beta2**step)).add_(group["eps"])
        rms = grad.div(denom).pow(2).mean().sqrt().item()
        step_size = lr / (1.0 - beta1**step) / max(1.0, rms / group["clip_threshold"])
        p.addcdiv_(state["exp_avg"], denom, value=-step_size)


def warm_cosine_lr(
    step: int,
    *,
    base_lr: float = 1e-3,
    final_lr: float = 1e-4,
    warmup_steps: int = 100,
    total_steps: int,
) -> float:
    """The learning rate of optimizer step ``step`` (0-based; stepped per iteration).

    Linear from 0 (step 0) to ``base_lr`` (step ``warmup_steps``), then a cosine from ``base_lr``
    down to ``final_lr``, reached at the last step (``total_steps - 1``) and kept after it.
    """
    if not 0 <= warmup_steps < total_steps:
        raise ValueError(
            f"warmup_steps {warmup_steps} must be in [0, total_steps {total_steps}); "
            "shorten the warm-up or train for more steps"
        )
    if step < warmup_steps:
        return base_lr * step / warmup_steps
    cosine_steps = max(1, total_steps - 1 - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / cosine_steps)
    return final_lr + 0.5 * (base_lr - final_lr) * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer: Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def warm_cosine_scheduler(
    optimizer: Optimizer, *, base_lr: float, final_lr: float, warmup_steps: int, total_steps: int
) -> LambdaLR:
    """A ``LambdaLR`` following ``warm_cosine_lr``; call ``scheduler.step()`` after every iteration."""
    set_lr(optimizer, base_lr)
    for group in optimizer.param_groups:
        group["initial_lr"] = base_lr

    def factor(step: int) -> float:
        lr = warm_cosine_lr(
            step, base_lr=base_lr, final_lr=final_lr, warmup_steps=warmup_steps, total_steps=total_steps
        )
        return lr / base_lr

    return LambdaLR(optimizer, factor)
