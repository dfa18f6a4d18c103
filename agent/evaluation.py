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

    Sampled (`greedy=False`), each episode draws its actions from the policy's probabilities with a generator of its
    own seeded by the episode's seed, by the inverse CDF: two policies compared on the same seeds share their random
    numbers (where their distributions agree they take the same actions), so the paired difference measures the
    policies, not the dice — and a policy's returns on the same seeds are the same every time.
    """
    returns = np.zeros(len(seeds))
    known: dict[tuple, int] = {}  # greedy only: (text, legal actions, task) → action
    for start in range(0, len(seeds), batch):
        chunk = list(range(start, min(start + batch, len(seeds))))
        envs = [make_env(env_name) for _ in chunk]
        for env, i in zip(envs, chunk, strict=True):
            env.reset(seed=int(seeds[i]))
        dice = [np.random.default_rng(int(seeds[i])) for i in chunk]  # sampled only: each episode's random numbers
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
            else:  # the probabilities, without the policy's own dice
                decisions = policy.decide([observations[j] for j in live], greedy=True)
                actions = {j: _inverse_cdf(d.probs, dice[j].random()) for j, d in zip(live, decisions, strict=True)}
            still = []
            for j in live:
                _, reward, terminated, truncated, _ = envs[j].step(actions[j])
                returns[chunk[j]] += float(reward)
                if not (terminated or truncated):
                    still.append(j)
            live = still
    return returns


def _inverse_cdf(probs: Sequence[float], u: float) -> int:
    """Returns the action whose cumulative probability first exceeds `u` (in [0, 1))."""
    return min(int(np.searchsorted(np.cumsum(probs), u, side="right")), len(probs) - 1)


def paired_difference(challenger: np.ndarray, champion: np.ndarray) -> tuple[float, float]:
    """Returns (mean of challenger − champion over paired episodes, its standard error)."""
    diff = np.asarray(challenger, dtype=float) - np.asarray(champion, dtype=float)
    if len(diff) < 2:
        return float(diff.mean()) if len(diff) else 0.0, float("inf")
    return float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(len(diff)))
