"""Evaluating a policy on fixed seeds, without recording: the same episodes for every policy compared."""

from collections.abc import Sequence

import numpy as np

from agent.envs import make_env
from agent.policy import Policy
from agent.runner import observe


def episode_returns(policy: Policy, env_name: str, seeds: Sequence[int], greedy: bool = True,
                    batch: int = 32) -> np.ndarray:
    """Returns the return of one episode per seed of `env_name` under `policy`, stepping up to `batch` in lockstep."""
    returns = np.zeros(len(seeds))
    for start in range(0, len(seeds), batch):
        chunk = list(range(start, min(start + batch, len(seeds))))
        envs = [make_env(env_name) for _ in chunk]
        for env, i in zip(envs, chunk, strict=True):
            env.reset(seed=int(seeds[i]))
        live = list(range(len(chunk)))
        while live:
            decisions = policy.decide([observe(envs[j]) for j in live], greedy=greedy)
            still = []
            for j, decision in zip(live, decisions, strict=True):
                _, reward, terminated, truncated, _ = envs[j].step(decision.action)
                returns[chunk[j]] += float(reward)
                if not (terminated or truncated):
                    still.append(j)
            live = still
    return returns


def paired_difference(challenger: np.ndarray, champion: np.ndarray) -> tuple[float, float]:
    """Returns (mean of challenger − champion over paired episodes, its standard error)."""
    diff = np.asarray(challenger, dtype=float) - np.asarray(champion, dtype=float)
    if len(diff) < 2:
        return float(diff.mean()) if len(diff) else 0.0, float("inf")
    return float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(len(diff)))
