"""Losses of the HRM: stablemax / softmax cross-entropy on tokens, plus the ACT Q-learning losses.

As in the seed's `losses.py`: token losses are normalised per sequence (each example weighs the same whatever its
label count), Q-halt is trained against "the whole answer is correct", Q-continue against the bootstrapped target
from the next segment, and metrics count only rows that halted in this segment.
"""

import torch
import torch.nn.functional as F

from hrm.model import Carry, HrmOutput

IGNORE_INDEX = -100


def _stablemax_s(x: torch.Tensor, eps: float = 1e-30) -> torch.Tensor:
    return torch.where(x < 0, 1 / (1 - x + eps), x + 1)


def log_stablemax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Returns log of stablemax(x) = s(x) / Σ s(x), with s(x) = x + 1 for x ≥ 0 and 1 / (1 − x) otherwise."""
    s = _stablemax_s(x)
    return torch.log(s / s.sum(dim=dim, keepdim=True))


def _on_labelled(loss_fn):
    """Wraps a (N, V) × (N,) loss so it runs only on labelled positions and returns labels' shape (0 elsewhere).

    Agent examples label a few answer slots out of many positions; skipping the rest saves most of the work over a
    50,257-token vocabulary.
    """

    def per_token(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        valid = labels != IGNORE_INDEX
        picked = loss_fn(logits[valid], labels[valid].long())
        return torch.zeros(labels.shape, dtype=picked.dtype, device=labels.device).masked_scatter(valid, picked)

    per_token.__doc__ = loss_fn.__doc__
    return per_token


@_on_labelled
def stablemax_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Returns the per-token stablemax cross-entropy (labels' shape; 0 where the label is IGNORE_INDEX), in fp64."""
    return -log_stablemax(logits.double(), dim=-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)


@_on_labelled
def softmax_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Returns the per-token softmax cross-entropy (labels' shape; 0 where the label is IGNORE_INDEX), in fp32."""
    return F.cross_entropy(logits.float(), labels, reduction="none")


TOKEN_LOSSES = {"stablemax": stablemax_cross_entropy, "softmax": softmax_cross_entropy}


def q_losses(carry: Carry, output: HrmOutput, correct: torch.Tensor, valid: torch.Tensor,
             continue_loss: bool = True) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Returns (0.5 · (Q-halt BCE + Q-continue BCE), metrics) given each row's "answer is correct" flag (B,).

    Q-halt learns to predict correctness; Q-continue learns the bootstrapped target from the next segment
    (`continue_loss=False` drops it, as TRM does). Metrics count the `valid` rows (those that halted in this
    segment and have an answer to judge).
    """
    with torch.no_grad():
        metrics = {
            "count": valid.sum(),
            "q_halt_accuracy": (valid & ((output.q_halt_logits >= 0) == correct)).sum(),
            "steps": torch.where(valid, carry.steps, 0).sum(),
        }
    q_halt_loss = F.binary_cross_entropy_with_logits(output.q_halt_logits, correct.float(), reduction="sum")
    loss = 0.5 * q_halt_loss
    metrics["q_halt_loss"] = q_halt_loss.detach()
    if continue_loss and output.target_q_continue is not None:
        q_continue_loss = F.binary_cross_entropy_with_logits(output.q_continue_logits, output.target_q_continue,
                                                             reduction="sum")
        loss = loss + 0.5 * q_continue_loss
        metrics["q_continue_loss"] = q_continue_loss.detach()
    return loss, metrics


def act_loss(carry: Carry, output: HrmOutput, loss_type: str = "stablemax",
             continue_loss: bool = True) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Returns (summed loss over the batch, summed metrics) for one segment of token prediction.

    loss = Σ_rows token_loss / labels_in_row + 0.5 (Q-halt BCE + Q-continue BCE), with "correct" = every label of
    the row predicted. Metrics are sums over the rows that halted in this segment ("count" of them), so they can
    be reduced across steps and ranks and then divided.
    """
    labels = carry.data["labels"]
    with torch.no_grad():
        mask = labels != IGNORE_INDEX
        counts = mask.sum(-1)
        divisor = counts.clamp_min(1).unsqueeze(-1)
        correct = mask & (output.logits.argmax(-1) == labels)
        seq_correct = correct.sum(-1) == counts
        valid = carry.halted & (counts > 0)
    q_loss, metrics = q_losses(carry, output, seq_correct, valid, continue_loss)
    token_loss = (TOKEN_LOSSES[loss_type](output.logits, labels) / divisor).sum()
    metrics.update(accuracy=torch.where(valid, (correct.float() / divisor).sum(-1), 0).sum(),
                   exact_accuracy=(valid & seq_correct).sum(), lm_loss=token_loss.detach())
    return token_loss + q_loss, metrics
