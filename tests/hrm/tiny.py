"""Tiny HRM configs and batches shared by the hrm tests."""

import torch

from hrm import HrmConfig


def tiny_config(**overrides) -> HrmConfig:
    """Returns a small HRM config (hidden 32, 1+1 layers, 2×2 cycles) with a task embedding."""
    base = dict(vocab_size=12, seq_len=6, num_tasks=3, task_emb_dim=32, hidden_size=32, num_heads=2, expansion=2.0,
                H_layers=1, L_layers=1, H_cycles=2, L_cycles=2, halt_max_steps=4)
    return HrmConfig(**{**base, **overrides})


def random_batch(config: HrmConfig, batch_size: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    """Returns a batch whose labels are the inputs reversed."""
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randint(1, config.vocab_size, (batch_size, config.seq_len), generator=g)
    return {"inputs": inputs, "labels": inputs.flip(-1),
            "task_ids": torch.randint(0, config.num_tasks, (batch_size,), generator=g)}
