import gymnasium
import pytest

from agent.envs import make_env
from agent.envs.frozen_lake import FrozenLake


def test_start_is_rendered_as_a_map_with_the_agent_marked():
    env = make_env("FrozenLake-v1")
    assert env.reset(seed=0) == 0
    assert env.observation_text() == "A F F F\nF H F H\nF F F H\nH F F G\nYou are on the start at row 0, column 0."
    assert env.render_text(5) == "S F F F\nF A F H\nF F F H\nH F F G\nYou are in a hole at row 1, column 1."


def test_8x8_map_and_step_limit():
    env = make_env("FrozenLake-v1-8x8")
    assert env.env.spec.max_episode_steps == 200
    assert env.render_text(63).splitlines()[-2:] == ["F F F H F F F A", "You are on the goal at row 7, column 7."]


def test_action_names_follow_gymnasium_indices():
    # Without slipping, each named action must move the way its name says (8x8: the first two rows are all ice).
    env = FrozenLake("FrozenLake-nonslippery", 15, gymnasium.make("FrozenLake8x8-v1", is_slippery=False))
    env.reset(seed=0)
    visited = [env.step(env.action_names.index(move))[0] for move in ["right", "down", "left", "up"]]
    assert visited == [1, 9, 8, 0]
    assert env.legal_actions() == ["left", "down", "right", "up"]


@pytest.mark.parametrize(("name", "expected"), [("FrozenLake-v1", 0.744), ("FrozenLake-v1-8x8", 0.913)])
def test_optimal_success_probability_within_the_step_limit(name, expected):
    assert make_env(name).optimal_return() == pytest.approx(expected, rel=0.01)


def test_success_means_reaching_the_goal():
    env = make_env("FrozenLake-v1")
    assert env.success(1.0, terminated=True)
    assert not env.success(0.0, terminated=True)  # fell into a hole
    assert not env.success(0.0, terminated=False)  # ran out of steps
