"""AdamATan2, SignSGD and the schedule against hand-computed values."""

import math

import pytest
import torch

from hrm import AdamATan2, SignSGD, warmup_cosine


def test_adam_atan2_matches_its_formula_on_hand_computed_steps():
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = AdamATan2([p], lr=0.1, betas=(0.9, 0.95), weight_decay=0.01)
    p.grad = torch.tensor([0.5, 0.0])
    opt.step()
    # Step 1: m = 0.05, v = 0.0125 → m̂ = 0.5, √v̂ = 0.5 → atan2 = π/4; p = 1·(1 − 0.001) − 0.1·π/4.
    # A zero gradient gives atan2(0, 0) = 0: only the decay moves the second entry.
    assert p[0].item() == pytest.approx(0.999 - 0.1 * math.pi / 4, abs=1e-7)
    assert p[1].item() == pytest.approx(-2.0 * 0.999, abs=1e-7)
    p.grad = torch.tensor([-1.0, 0.0])
    before = p[0].item()
    opt.step()
    # Step 2: m = 0.9·0.05 − 0.1 = −0.055, v = 0.95·0.0125 + 0.05 = 0.061875.
    m_hat, v_hat = -0.055 / (1 - 0.9**2), 0.061875 / (1 - 0.95**2)
    assert p[0].item() == pytest.approx(before * 0.999 - 0.1 * math.atan2(m_hat, math.sqrt(v_hat)), abs=1e-7)


def test_adam_atan2_update_is_bounded_without_epsilon():
    p = torch.nn.Parameter(torch.zeros(3))
    opt = AdamATan2([p], lr=1.0)
    p.grad = torch.tensor([1e-30, 1e30, -5.0])
    opt.step()
    assert torch.isfinite(p).all() and (p.abs() <= math.pi / 2 + 1e-6).all()


def test_sign_sgd_moves_only_rows_with_gradient():
    table = torch.nn.Parameter(torch.ones(4, 3))
    opt = SignSGD([table], lr=0.1, weight_decay=0.5)
    table.grad = torch.zeros(4, 3)
    table.grad[2] = torch.tensor([3.0, -0.01, 0.0])
    opt.step()
    expected = torch.ones(4, 3)
    expected[2] = torch.tensor([1 * 0.95 - 0.1, 0.95 + 0.1, 0.95])
    torch.testing.assert_close(table.detach(), expected)


def test_sign_sgd_decays_every_row_of_the_batch_even_without_gradient():
    table = torch.nn.Parameter(torch.ones(4, 2))
    opt = SignSGD([table], lr=0.1, weight_decay=0.5)
    table.grad = torch.zeros(4, 2)
    table.grad[1] = torch.tensor([2.0, -1.0])
    opt.use_rows(torch.tensor([1, 3, 3]))  # task 3 is in the batch; its summed gradient is exactly zero
    opt.step()
    expected = torch.ones(4, 2)
    expected[1] = torch.tensor([0.95 - 0.1, 0.95 + 0.1])
    expected[3] = torch.tensor([0.95, 0.95])
    torch.testing.assert_close(table.detach(), expected)


def test_warmup_then_cosine_to_the_floor():
    assert warmup_cosine(0, warmup_steps=10, total_steps=110) == 0.0
    assert warmup_cosine(5, warmup_steps=10, total_steps=110) == 0.5
    assert warmup_cosine(10, warmup_steps=10, total_steps=110) == 1.0
    assert warmup_cosine(60, warmup_steps=10, total_steps=110, min_ratio=0.1) == pytest.approx(0.55)
    assert warmup_cosine(110, warmup_steps=10, total_steps=110, min_ratio=0.1) == pytest.approx(0.1)
    assert warmup_cosine(500, warmup_steps=10, total_steps=110, min_ratio=0.1) == pytest.approx(0.1)
