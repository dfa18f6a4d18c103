"""Evaluation on fixed seeds: returns as the envs pay them, each distinct observation decided once when greedy."""

import numpy as np

from agent.envs import make_env
from agent.evaluation import episode_returns, paired_difference
from agent.oracle import OracleTeacher
from agent.policy import RandomPolicy


class Counting:
    """Wraps a policy and counts the observations it is asked to decide."""

    def __init__(self, policy):
        self.policy, self.name, self.version, self.asked = policy, policy.name, None, 0

    def decide(self, observations, greedy=False):
        self.asked += len(observations)
        return self.policy.decide(observations, greedy=greedy)


def test_a_greedy_policy_that_never_finishes_costs_one_decision_per_distinct_state():
    always_south = Counting(RandomPolicy())  # greedy: the first legal action, "south", everywhere
    returns = episode_returns(always_south, "Taxi-v4", seeds=range(20), batch=8)
    assert returns.tolist() == [-200.0] * 20  # −1 a step until the 200-step limit
    assert always_south.asked <= 20 * 5  # a taxi driving south meets the wall within 4 moves


def test_the_greedy_oracle_reaches_the_optimum_and_sampling_asks_every_step():
    optimum = make_env("FrozenLake-v1").optimal_return()
    returns = episode_returns(OracleTeacher(), "FrozenLake-v1", seeds=range(400), batch=100)
    assert abs(returns.mean() - optimum) < 3 * returns.std() / np.sqrt(len(returns))
    sampled = Counting(RandomPolicy(seed=1))
    returns = episode_returns(sampled, "FrozenLake-v1", seeds=range(10), greedy=False)
    assert sampled.asked > 16  # no caching: a sampling policy is asked at every step of every episode
    again = episode_returns(RandomPolicy(seed=2), "FrozenLake-v1", seeds=range(10), greedy=False)
    assert again.tolist() == returns.tolist()  # each episode's own dice: the same probabilities, the same episodes


def test_paired_difference_is_the_mean_difference_and_its_standard_error():
    mean, stderr = paired_difference(np.array([1.0, 2.0, 3.0]), np.array([0.0, 2.0, 1.0]))
    assert mean == 1.0 and np.isclose(stderr, 1.0 / np.sqrt(3))
