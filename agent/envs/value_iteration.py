"""Exact optimal values of tabular gymnasium MDPs (the `env.unwrapped.P` table) by vectorised value iteration.

The toy-text envs are episodic and undiscounted, and their TimeLimit is part of the problem: without it, FrozenLake's
optimum is to shuffle safely forever and reach the goal with probability 0.82 (4x4) or 1.0 (8x8); within the 100 or
200 steps gymnasium allows, it is 0.744 or 0.913. So `solve` runs exactly `horizon` Bellman backups (γ = 1) when the
env has a step limit, and iterates to convergence only when it has none.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TabularModel:
    """Gymnasium's P table as padded (S, A, K) arrays: probabilities, next states, rewards, terminated flags."""

    probs: np.ndarray
    next_states: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray

    @classmethod
    def from_gymnasium(cls, P: dict[int, dict[int, list[tuple]]]) -> "TabularModel":
        """Return the model of `P[s][a] = [(prob, next_state, reward, terminated), ...]`, padded with prob-0 rows."""
        n_states, n_actions = len(P), len(P[0])
        width = max(len(outcomes) for by_action in P.values() for outcomes in by_action.values())
        shape = (n_states, n_actions, width)
        probs, rewards = np.zeros(shape), np.zeros(shape)
        next_states, terminated = np.zeros(shape, dtype=np.int64), np.zeros(shape, dtype=bool)
        for s, by_action in P.items():
            for a, outcomes in by_action.items():
                for k, (prob, next_state, reward, done) in enumerate(outcomes):
                    probs[s, a, k], next_states[s, a, k] = prob, next_state
                    rewards[s, a, k], terminated[s, a, k] = reward, done
        return cls(probs, next_states, rewards, terminated)


@dataclass(frozen=True)
class Solution:
    """Optimal action values q (S, A) with the whole step budget left, and the optimal expected episode return."""

    q: np.ndarray
    optimal_return: float


def solve(
    model: TabularModel, start_probs: np.ndarray, horizon: int | None, tol: float = 1e-12, max_sweeps: int = 100_000
) -> Solution:
    """Return the undiscounted optimum: `horizon` backups (the env's TimeLimit), or backups until values converge."""
    expected_reward = (model.probs * model.rewards).sum(-1)  # (S, A)
    continuing = model.probs * ~model.terminated  # (S, A, K): probability mass that goes on to another step
    value = np.zeros(len(expected_reward))  # (S,): optimal return with no steps left
    for _ in range(horizon if horizon is not None else max_sweeps):
        q = expected_reward + (continuing * value[model.next_states]).sum(-1)  # (S, A)
        converged = np.abs(q.max(1) - value).max() < tol
        value = q.max(1)
        if horizon is None and converged:
            break
    else:
        if horizon is None:
            raise RuntimeError(f"value iteration did not converge in {max_sweeps} sweeps; give the env a TimeLimit")
    return Solution(q, float(start_probs @ value))
