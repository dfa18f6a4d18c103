"""Fixtures of the HRM × LM tests: one tiny HRM × LM trained on 1-2-digit addition, shared by the session."""

import pytest
import torch
from rich.console import Console

from hrm.lm.train import TrainArgs, train

# A tiny HRM encoder (hidden 64, one H and one L block, up to 2 ACT segments) on additions of 1-2-digit numbers,
# without Abacus offsets (no length generalisation asked for): 97 % held-out exact match at step 400, more at 500.
TINY = dict(hidden_size=64, num_heads=2, expansion=2.0, h_layers=1, l_layers=1, h_cycles=2, l_cycles=2,
            halt_max_steps=2, decoder_layers=2, min_digits=1, max_digits=2, ood_min_digits=3, ood_max_digits=3,
            heldout_size=300, ood_size=50, abacus_offset=0, batch_size=64, lr=3e-3, warmup_steps=30,
            log_every=10_000, device="cpu")
LEARN_STEPS = 500


@pytest.fixture(scope="session")
def trained_lm(tmp_path_factory):
    """Returns (checkpoint path, last metrics) of the tiny model trained for LEARN_STEPS steps at seed 0."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    save_dir = tmp_path_factory.mktemp("lm")
    args = TrainArgs(**TINY, steps=LEARN_STEPS, val_every=LEARN_STEPS, save_dir=str(save_dir), seed=0)
    _, last = train(args, Console(quiet=True))
    torch.set_num_threads(threads)
    return save_dir / "last.pt", last
