"""Data-parallel training under torchrun (gloo on CPU) matches single-process training on the same global batch."""

import os
import subprocess
import sys

import pytest
import torch

from hrm import Hrm, TrainConfig, Trainer
from tests.conftest import ROOT
from tests.hrm.tiny import random_batch, tiny_config

STEPS = 4


@pytest.mark.slow
def test_two_ranks_match_one_process_with_the_same_global_batch(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(ROOT / "tests" / "hrm" / "ddp_worker.py"), str(tmp_path), str(STEPS)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]

    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    torch.manual_seed(0)
    single = Trainer(Hrm(tiny_config(halt_exploration_prob=0.0)),
                     TrainConfig(total_steps=STEPS, lr=3e-3, warmup_steps=1), "cpu")
    for step in range(STEPS):
        metrics = single.train_step(random_batch(tiny_config(), 8, seed=step))

    for name, p in single.model.named_parameters():
        assert torch.equal(rank0["params"][name], rank1["params"][name]), f"ranks differ on {name}"
        torch.testing.assert_close(rank0["params"][name], p.detach(), rtol=1e-4, atol=1e-5, msg=name)
    assert rank0["metrics"]["lm_loss"] == pytest.approx(metrics["lm_loss"], rel=1e-4)
    assert [p.name for p in tmp_path.glob("*.pt")].count("ckpt.pt") == 1  # only rank 0 writes the checkpoint
