"""Held-out metrics: what `evaluate` reports per example, and the Q-continue target it scores against."""

import pytest
import torch
import torch.nn.functional as F

from hrm import Hrm, evaluate
from hrm.losses import stablemax_cross_entropy
from tests.hrm.tiny import random_batch, tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")


def test_bootstrap_target_is_the_next_segments_q_value():
    config = tiny_config()
    model = Hrm(config).eval()
    batch = random_batch(config, batch_size=5)
    pred = model.predict(batch, adaptive=False, bootstrap=True)
    x = model.embed(batch["inputs"], batch["task_ids"])
    carry = model.initial_carry(batch)
    z_H, z_L = carry.z_H, carry.z_L
    with torch.no_grad():
        for _ in range(config.halt_max_steps):
            z_H, z_L = model.segment(z_H, z_L, x)
        q_halt, q_continue = model.q_values(z_H)
        next_halt, _ = model.q_values(model.segment(z_H, z_L, x)[0])
    torch.testing.assert_close(pred.q_halt_logits, q_halt)
    torch.testing.assert_close(pred.q_continue_logits, q_continue)
    # At the last segment training's target is the next segment's halt value (hrm/model.py forward).
    torch.testing.assert_close(pred.target_q_continue, torch.sigmoid(next_halt))


def test_evaluate_averages_every_metric_per_example_over_uneven_batches():
    config = tiny_config(halt_max_steps=3)
    model = Hrm(config).eval()
    batch = random_batch(config, batch_size=6, seed=3)
    batch["labels"][0, :2] = -100  # ignored positions count neither for nor against
    metrics = evaluate(model, [{k: v[:4] for k, v in batch.items()}, {k: v[4:] for k, v in batch.items()}])

    pred = model.predict(batch, adaptive=False, bootstrap=True)
    labels = batch["labels"]
    mask = labels != -100
    correct = (pred.logits.argmax(-1) == labels) & mask
    exact = correct.sum(-1) == mask.sum(-1)
    expected = {
        "accuracy": (correct.sum(-1) / mask.sum(-1)).mean(),
        "exact_accuracy": exact.float().mean(),
        "q_halt_accuracy": ((pred.q_halt_logits >= 0) == exact).float().mean(),
        "steps": torch.tensor(3.0),
        "lm_loss": (stablemax_cross_entropy(pred.logits, labels).sum(-1) / mask.sum(-1)).mean(),
        "q_halt_loss": F.binary_cross_entropy_with_logits(pred.q_halt_logits, exact.float()),
        "q_continue_loss": F.binary_cross_entropy_with_logits(pred.q_continue_logits, pred.target_q_continue),
    }
    assert set(metrics) == set(expected)
    for key, value in expected.items():
        assert abs(metrics[key] - float(value)) < 1e-5, key


def test_a_model_that_answers_right_scores_full_accuracy():
    config = tiny_config(halt_max_steps=2)
    model = Hrm(config).eval()
    batch = random_batch(config, batch_size=4, seed=1)
    batch["labels"] = model.predict(batch, adaptive=False).logits.argmax(-1)  # its own answers are "correct"
    metrics = evaluate(model, [batch])
    assert metrics["accuracy"] == metrics["exact_accuracy"] == 1.0
    assert metrics["q_halt_accuracy"] == 0.0  # the untrained Q head (bias -5) still says "not done"
