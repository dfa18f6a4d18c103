"""Episode seeds: the evaluation seeds, which no training episode is ever reset with, and draws of the others.

Benchmarks score held-out play on seeds from EVALUATION_SEEDS (bench/competence.py starts at 50,000). Where a seed
selects a level or a game (BabyAI, TextWorld), those levels and games are then never seen in training: the runner,
RL rollouts and recorded play draw their seeds with `training_seeds`. TextWorld maps evaluation seeds to a pool of
held-out games of its own.
"""

import numpy as np

EVALUATION_SEEDS = range(50_000, 150_000)
_SEED_SPACE = 2**31 - 1


def training_seeds(rng: np.random.Generator, n: int) -> list[int]:
    """Returns `n` seeds drawn uniformly from [0, 2³¹ − 1) less EVALUATION_SEEDS."""
    draws = rng.integers(0, _SEED_SPACE - len(EVALUATION_SEEDS), n)
    return [int(s) + len(EVALUATION_SEEDS) if s >= EVALUATION_SEEDS.start else int(s) for s in draws]
