import numpy as np
import pytest

from agent.policy import Decision, Observation, RandomPolicy, decision_from_probs


def observation(n_legal: int) -> Observation:
    return Observation("Taxi-v4", 2, "text", tuple(f"a{i}" for i in range(n_legal)), 0)


def test_random_policy_is_uniform_over_legal_actions():
    decisions = RandomPolicy(seed=0).decide([observation(3)] * 6000 + [observation(2)])
    assert all(d.probs == (1 / 3, 1 / 3, 1 / 3) for d in decisions[:-1]) and decisions[-1].probs == (0.5, 0.5)
    counts = np.bincount([d.action for d in decisions[:-1]], minlength=3)
    np.testing.assert_allclose(counts / 6000, 1 / 3, atol=0.03)


def test_random_policy_is_seeded_and_greedy_takes_the_first_action():
    def actions(seed):
        return [d.action for d in RandomPolicy(seed).decide([observation(4)] * 20)]

    assert actions(1) == actions(1) != actions(2)
    assert {d.action for d in RandomPolicy().decide([observation(4)] * 20, greedy=True)} == {0}


def test_decision_from_probs_samples_or_takes_the_argmax():
    probs = np.array([0.1, 0.7, 0.2])
    assert decision_from_probs(probs, np.random.default_rng(0), greedy=True) == Decision(1, (0.1, 0.7, 0.2))
    with pytest.raises(ValueError):
        decision_from_probs(np.array([0.5, 0.6]), np.random.default_rng(0), greedy=False)  # not a distribution
