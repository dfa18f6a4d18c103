"""Shared test settings: two threads (the CI machine has two cores) and the project root on sys.path."""

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def seeded():
    """Every test starts from the same global RNG state, whatever ran before it."""
    torch.manual_seed(0)
