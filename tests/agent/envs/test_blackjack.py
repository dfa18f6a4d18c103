import numpy as np
import pytest

from agent.envs import make_env


def test_rendering_is_a_sentence():
    env = make_env("Blackjack-v1")
    assert env.reset(seed=0) == (11, 10, 0)
    assert env.observation_text() == "Your cards total 11, no usable ace. The dealer shows a 10."
    assert env.render_text((17, 1, 1)) == "Your cards total 17, with a usable ace. The dealer shows an ace."
    assert env.render_text((25, 8, 0)) == "Your cards total 25, bust. The dealer shows an 8."


def test_action_names_follow_gymnasium_indices():
    env = make_env("Blackjack-v1")
    env.reset(seed=0)
    obs, reward, terminated, *_ = env.step(env.action_names.index("hit"))  # 11 cannot bust
    assert obs[0] > 11 and reward == 0 and not terminated
    assert env.step(env.action_names.index("stick"))[2]
    assert env.legal_actions() == ["stick", "hit"]


def test_optimal_policy_is_sutton_and_barto_figure_5_2():
    env = make_env("Blackjack-v1")
    dealer = range(1, 11)  # ace, 2..10

    def row(total, usable_ace):
        return "".join("H" if np.argmax(env.optimal_q((total, d, usable_ace))) else "S" for d in dealer)

    assert [row(t, 0) for t in (17, 16, 13, 12, 11)] == [
        "SSSSSSSSSS",
        "HSSSSSHHHH",
        "HSSSSSHHHH",
        "HHHSSSHHHH",
        "HHHHHHHHHH",
    ]
    assert [row(t, 1) for t in (19, 18, 17)] == ["SSSSSSSSSS", "HSSSSSSSHH", "HHHHHHHHHH"]


def test_optimal_return_is_exact():
    env = make_env("Blackjack-v1")
    assert env.optimal_return() == pytest.approx(-0.04311, abs=1e-5)  # checked against 200,000 oracle hands
    assert np.all(env.optimal_q((22, 5, 0)) == 0)  # bust: the episode is over
    assert env.success(1.0, terminated=True) and not env.success(0.0, terminated=True)
