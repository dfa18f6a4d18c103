"""Optimizers and the learning-rate schedule of HRM training, in plain PyTorch (CPU, CUDA, MPS alike).

- AdamATan2 (Everett et al. 2024, "Scaling Exponents Across Parameterizations and Optimizers"): Adam without
  epsilon, the division replaced by atan2: p ← p·(1 − lr·wd) − lr·atan2(m̂, √v̂). The seed uses a CUDA-only
  kernel package for it; this one needs none.
- SignSGD for the task (puzzle) embedding: p ← p·(1 − lr·wd) − lr·sign(g), applied to the rows of the batch's tasks
  (decay included where a row's summed gradient happens to be zero), as the seed's sparse-embedding optimizer does.
- Linear warmup then cosine decay to a floor (`min_ratio` × lr).
"""

import math

import torch
from torch.optim import Optimizer


class AdamATan2(Optimizer):
    """Adam with atan2 in place of m̂ / (√v̂ + ε), decoupled weight decay, betas (0.9, 0.95) by default."""

    def __init__(self, params, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.95), weight_decay: float = 0.0):
        if lr < 0 or weight_decay < 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"invalid AdamATan2 settings: lr={lr}, betas={betas}, weight_decay={weight_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        """Performs one update; returns the closure's loss if one is given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, (beta1, beta2), wd = group["lr"], group["betas"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                t = state["step"].item()
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.lerp_(p.grad, 1 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                # atan2(m̂, √v̂) = atan2(m·√(1−β2ᵗ)/(1−β1ᵗ), √v): atan2 is invariant to a common positive scale,
                # so both bias corrections fold into one scalar and the update needs two temporaries, not four.
                scale = math.sqrt(1 - beta2**t) / (1 - beta1**t)
                update = torch.atan2(m * scale, v.sqrt())
                p.mul_(1 - lr * wd).add_(update, alpha=-lr)
        return loss


class SignSGD(Optimizer):
    """Sign-SGD with decoupled weight decay over the rows of the batch (for embedding tables): the rows named by
    `use_rows` before the step, as the seed does with its batch's puzzle ids; without them, the rows that received
    gradient."""

    def __init__(self, params, lr: float = 1e-2, weight_decay: float = 0.0):
        if lr < 0 or weight_decay < 0:
            raise ValueError(f"invalid SignSGD settings: lr={lr}, weight_decay={weight_decay}")
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay))
        self.rows: torch.Tensor | None = None

    def use_rows(self, ids: torch.Tensor) -> None:
        """Names the rows (e.g. the batch's task ids, repeats allowed) the next step updates."""
        self.rows = ids.detach().flatten().unique()

    @torch.no_grad()
    def step(self, closure=None):
        """Performs one update on the touched rows; returns the closure's loss if one is given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, wd = group["lr"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.view(p.shape[0], -1)
                rows = g.ne(0).any(dim=1) if self.rows is None else self.rows.to(p.device)
                w = p.view(p.shape[0], -1)
                w[rows] = w[rows] * (1 - lr * wd) - lr * g[rows].sign()
        self.rows = None
        return loss


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float = 0.0) -> float:
    """Returns the lr multiplier at `step`: linear warmup from 0, then half a cosine down to `min_ratio`."""
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
