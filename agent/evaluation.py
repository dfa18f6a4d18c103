"""Evaluating a policy on fixed seeds, without recording: the same episodes for every policy compared."""

from collections.abc import Sequence

import numpy as np

from agent.envs import make_env
from agent.policy import Policy


def episode_returns(policy: Policy, env_name: str, seeds: Sequence[int], greedy: bool = True,
                    batch: int = 32) -> np.ndarray:
    """Returns the return of one episode per seed of `env_name` under `policy`, stepping up to `batch` in lockstep.

    A greedy policy is a function of what it sees, so each distinct observation is decided once and its decision
    reused: 500 Taxi episodes of a policy that never finishes (200 steps each) cost at most 500 decisions.
    """
    returns = np.zeros(len(seeds))
    known: dict[tuple, int] = {}  # greedy only: (text, legal actions, task) → action
    for start in range(0, len(seeds), batch):
        chunk = list(range(start, min(start + batch, len(seeds))))
        envs = [make_env(env_name) for _ in chunk]
        for env, i in zip(envs, chunk, strict=True):
            env.reset(seed=int(seeds[i]))
        live = list(range(len(chunk)))
        while live:
            observations = {j: envs[j].observe() for j in live}
            if greedy:
                keys = {j: (o.text, o.legal_actions, o.task_id) for j, o in observations.items()}
                new = list({keys[j]: j for j in live if keys[j] not in known}.values())
                if new:
                    decisions = policy.decide([observations[j] for j in new], greedy=True)
                    known.update((keys[j], d.action) for j, d in zip(new, decisions, strict=True))
                actions = {j: known[keys[j]] for j in live}
            else:
                decisions = policy.decide([observations[j] for j in live], greedy=False)
                actions = {j: d.action for j, d in zip(live, decisions, strict=True)}
            still = []
            for j in live:
                _, reward, terminated, truncated, _ = envs[j].step(actions[j])
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
