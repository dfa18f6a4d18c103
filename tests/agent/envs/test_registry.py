import doctest

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import agent.envs.base
from agent.envs import ENV_NAMES, MAX_TASKS, TASK_IDS, env_class, make_env

# name → (gymnasium id, make kwargs, step limit): what each text env must wrap.
GYMNASIUM = {
    "FrozenLake-v1": ("FrozenLake-v1", {}, 100),
    "FrozenLake-v1-8x8": ("FrozenLake8x8-v1", {}, 200),
    "Taxi-v4": ("Taxi-v4", {}, 200),
    "CliffWalking-v1": ("CliffWalking-v1", {"max_episode_steps": 200}, 200),
    "Blackjack-v1": ("Blackjack-v1", {}, None),
}
BABYAI = {"BabyAI-GoToRedBall": 5, "BabyAI-GoToLocal": 6, "BabyAI-PickupLoc": 7, "BabyAI-PutNextLocal": 8}
"""minigrid levels (their own step limits); tests/agent/envs/test_babyai.py checks their steps against minigrid's."""
TEXTWORLD = {"TextWorld-medium": 14, "TextWorld-simple": 15}
"""generated text games (tests/agent/envs/test_textworld.py)."""


def test_task_ids_are_stable_and_unique():
    # These ids are rows of trained HRMs' task embeddings: changing one breaks every checkpoint.
    expected = {"FrozenLake-v1": 0, "FrozenLake-v1-8x8": 1, "Taxi-v4": 2, "CliffWalking-v1": 3, "Blackjack-v1": 4,
                **BABYAI, **TEXTWORLD}
    assert TASK_IDS == expected
    assert len(set(TASK_IDS.values())) == len(TASK_IDS) and max(TASK_IDS.values()) < MAX_TASKS
    assert set(ENV_NAMES) == set(GYMNASIUM) | set(BABYAI) | set(TEXTWORLD)
    assert all(make_env(name).task_id == TASK_IDS[name] and make_env(name).name == name for name in ENV_NAMES)


def test_unknown_name_lists_the_choices():
    for lookup in (make_env, env_class):
        with pytest.raises(ValueError, match="unknown environment 'Pong'.*FrozenLake-v1, FrozenLake-v1-8x8, Taxi-v4"):
            lookup("Pong")


def test_an_envs_class_says_how_the_agent_treats_it_without_making_it():
    """RL judges greedily and uses the model critic where the text is the state; long text needs the long student."""
    for name in ENV_NAMES:
        assert type(make_env(name)) is env_class(name)
    assert env_class("Taxi-v4").text_is_state and env_class("Blackjack-v1").text_is_state
    assert not env_class("BabyAI-GoToLocal").text_is_state and not env_class("TextWorld-medium").text_is_state
    assert env_class("TextWorld-simple").long_text and not env_class("FrozenLake-v1").long_text


@pytest.mark.parametrize("name", GYMNASIUM)
def test_steps_are_gymnasiums_own(name):
    gym_id, kwargs, step_limit = GYMNASIUM[name]
    env, reference = make_env(name), gymnasium.make(gym_id, **kwargs)
    assert env.env.spec.max_episode_steps == step_limit
    assert len(env.action_names) == reference.action_space.n
    rng = np.random.default_rng(0)
    assert env.reset(seed=7) == reference.reset(seed=7)[0]
    for _ in range(300):
        action = int(rng.integers(len(env.action_names)))
        ours, theirs = env.step(action), reference.step(action)
        assert ours[:4] == theirs[:4] and env.state == ours[0]
        if ours[2] or ours[3]:
            seed = int(rng.integers(1000))
            assert env.reset(seed=seed) == reference.reset(seed=seed)[0]


@pytest.mark.parametrize("name", ENV_NAMES)
def test_text_is_plain_and_actions_are_all_legal(name):
    env = make_env(name)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(200):
        text, legal = env.observation_text(), env.legal_actions()
        assert text.isascii() and "\x1b" not in text and text.strip() == text
        if env.action_names:  # a fixed action set: every action, every step
            assert legal == env.action_names
        else:  # the legal actions change step by step
            assert legal and len(set(legal)) == len(legal) and all(a.strip() == a for a in legal)
        if any(env.step(int(rng.integers(len(legal))))[2:4]):
            env.reset()
    description = env.task_description()
    assert description.endswith(".") and description.count(". ") == 0


@pytest.mark.parametrize("name", ENV_NAMES)
def test_underlying_env_passes_gymnasium_check_env(name):
    check_env(make_env(name).env.unwrapped, skip_render_check=True)


def test_docstring_example_runs():
    assert doctest.testmod(agent.envs.base).failed == 0


def test_every_task_id_has_a_row_in_the_students_task_embedding():
    from hrm import HrmConfig

    assert MAX_TASKS == HrmConfig.preset("agent-29m").num_tasks
    assert max(TASK_IDS.values()) < MAX_TASKS
