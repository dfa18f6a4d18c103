"""Token losses and the ACT loss."""

import math

import torch
import torch.nn.functional as F

from hrm import IGNORE_INDEX, act_loss
from hrm.losses import log_stablemax, softmax_cross_entropy, stablemax_cross_entropy
from hrm.model import Carry, HrmOutput


def test_stablemax_matches_its_definition():
    logits = torch.tensor([[2.0, -1.0, 0.0]])
    s = torch.tensor([3.0, 0.5, 1.0])  # x + 1 for x ≥ 0, 1 / (1 − x) below
    torch.testing.assert_close(log_stablemax(logits), torch.log(s / s.sum())[None])
    loss = stablemax_cross_entropy(logits[None], torch.tensor([[1]]))
    assert loss.dtype == torch.float64
    assert math.isclose(loss.item(), -math.log(0.5 / 4.5), rel_tol=1e-12)


def test_ignored_positions_cost_nothing():
    logits = torch.randn(2, 3, 5)
    labels = torch.tensor([[1, IGNORE_INDEX, 4], [IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]])
    for loss_fn in (stablemax_cross_entropy, softmax_cross_entropy):
        loss = loss_fn(logits, labels)
        assert loss.shape == labels.shape
        assert (loss[labels == IGNORE_INDEX] == 0).all() and (loss[labels != IGNORE_INDEX] > 0).all()
    expected = F.cross_entropy(logits[0, [0, 2]], labels[0, [0, 2]], reduction="none")
    torch.testing.assert_close(softmax_cross_entropy(logits, labels)[0, [0, 2]], expected)


def _carry(labels, halted, steps):
    B = labels.shape[0]
    z = torch.zeros(B, 1, 1)
    return Carry(z, z, torch.tensor(steps, dtype=torch.int32), torch.tensor(halted), {"labels": labels})


def test_act_loss_normalises_per_sequence_and_counts_only_halted_rows():
    labels = torch.tensor([[0, 1, IGNORE_INDEX, IGNORE_INDEX], [1, 1, 1, 1]])
    logits = torch.full((2, 4, 2), -4.0)
    logits[0, 0, 0] = logits[0, 1, 1] = 4.0  # row 0 entirely right
    logits[1, :, 1] = 4.0
    logits[1, 0, 0], logits[1, 0, 1] = 4.0, -4.0  # row 1 right on 3 of 4 tokens
    output = HrmOutput(logits, q_halt_logits=torch.tensor([1.0, -1.0]), q_continue_logits=torch.zeros(2),
                       target_q_continue=torch.tensor([0.5, 0.5]))
    loss, metrics = act_loss(_carry(labels, [True, True], [2, 3]), output, "softmax")
    per_token = softmax_cross_entropy(logits, labels)
    token_loss = per_token[0].sum() / 2 + per_token[1].sum() / 4
    q_halt = F.binary_cross_entropy_with_logits(output.q_halt_logits, torch.tensor([1.0, 0.0]), reduction="sum")
    q_cont = F.binary_cross_entropy_with_logits(torch.zeros(2), torch.tensor([0.5, 0.5]), reduction="sum")
    torch.testing.assert_close(loss, token_loss + 0.5 * (q_halt + q_cont))
    assert metrics["count"] == 2
    assert math.isclose(metrics["accuracy"].item(), 1.0 + 0.75)
    assert metrics["exact_accuracy"] == 1 and metrics["q_halt_accuracy"] == 2 and metrics["steps"] == 5

    _, metrics = act_loss(_carry(labels, [False, True], [2, 3]), output, "softmax", continue_loss=False)
    assert metrics["count"] == 1 and metrics["exact_accuracy"] == 0 and "q_continue_loss" not in metrics

