"""Held-out metrics of an HRM × LM: exact match, token accuracy, ACT steps, and exact match by operand length.

The encoder runs until each prompt halts (adaptively, as generation does); the decoder is then scored with
teacher forcing in one pass. A row's answer is exactly right under teacher forcing if and only if greedy decoding
writes it, so exact match here is greedy generation's; token accuracy is per answer position given the true prefix.
"""

from collections import defaultdict

import torch

from hrm.device import autocast
from hrm.distributed import sum_metrics
from hrm.lm.model import HrmLm
from hrm.losses import IGNORE_INDEX


@torch.no_grad()
def evaluate_lm(model: HrmLm, batches, adaptive: bool = True, mixed_precision: str = "none",
                by_digits: bool = True) -> dict[str, float]:
    """Returns {"exact_accuracy", "accuracy", "steps", and "exact_d{n}" per operand length n} over `batches`."""
    model.eval()
    device = next(model.parameters()).device
    totals: dict[str, float] = defaultdict(float)
    for batch in batches:
        batch = {k: v.to(device) for k, v in batch.items()}
        digits = batch.pop("digits", None)
        labels = batch["labels"]
        with autocast(device, mixed_precision):
            memory, mask, steps = model.encode(batch, adaptive=adaptive)
            logits = model.teacher_forced(memory, mask, batch)
        valid = labels != IGNORE_INDEX
        correct = valid & (logits.argmax(-1) == labels)
        exact = correct.sum(-1) == valid.sum(-1)  # (B,)
        totals["count"] += len(labels)
        totals["exact_accuracy"] += float(exact.sum())
        totals["accuracy"] += float((correct.sum(-1) / valid.sum(-1).clamp_min(1)).sum())
        totals["steps"] += float(steps.sum())
        if by_digits and digits is not None:
            for n in digits.unique().tolist():
                rows = digits == n
                totals[f"count_d{n}"] += float(rows.sum())
                totals[f"exact_d{n}"] += float(exact[rows].sum())
    keys = sorted(totals)
    totals = {k: float(v) for k, v in sum_metrics({k: torch.tensor(totals[k]) for k in keys}).items()}
    n = max(totals.pop("count"), 1.0)
    out = {k: v / n for k, v in totals.items() if not k.startswith(("count_", "exact_d"))}
    for k in keys:
        if k.startswith("exact_d"):
            out[k] = totals[k] / max(totals["count_" + k[6:]], 1.0)
    return out
