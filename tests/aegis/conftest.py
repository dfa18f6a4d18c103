"""Fixtures for the autonomous-system tests: tiny student checkpoints on GPT-2's vocabulary."""

import pytest
import torch

from agent.envs import make_env
from hrm import Hrm, HrmConfig, TrainConfig, Trainer


def tiny_student_config() -> HrmConfig:
    """A small student with the agent preset's vocabulary and answer slots."""
    return HrmConfig.preset("agent-29m", hidden_size=32, num_heads=2, task_emb_dim=32, H_layers=1, L_layers=1,
                            halt_max_steps=2)


@pytest.fixture
def make_checkpoint(tmp_path):
    """Returns a function that writes a tiny student checkpoint (seeded) and returns its path."""

    def make(name: str, seed: int = 0):
        torch.manual_seed(seed)
        trainer = Trainer(Hrm(tiny_student_config()), TrainConfig(total_steps=1), "cpu")
        return trainer.save(tmp_path / f"{name}.pt")

    return make


@pytest.fixture
def canary():
    """A real observation every new model must answer."""
    env = make_env("Taxi-v4")
    env.reset(seed=0)
    return env.observe()
