"""The empirical model of the envs built from stored outcomes: exact action values on a deterministic corridor, the
same model whether refreshed in pieces or at once, only the tracked envs, and advantages centred on the policy."""

import numpy as np
import pytest

from agent.env_model import EnvModel
from agent.envs import make_env
from agent.rl import RlPolicy, ValueHead, collect_rollouts
from data.store import DecisionRecord, EpisodeEnd, EpisodeStart, ExperienceStore
from tests.agent.test_rl import _at, corridor, small_student

GAMMA = 0.9


def play(store: ExperienceStore, decisions: int, seed: int, envs=None) -> None:
    policy = RlPolicy(small_student(halting=False), ValueHead(32), seed=seed)
    collect_rollouts(policy, envs or [corridor() for _ in range(4)], store, decisions, seed=seed)


def corridor_q(model: EnvModel) -> dict[tuple[int, int], float]:
    q = model.q_values(GAMMA)
    out = {}
    for cell in range(4):
        o = _at(cell)
        for action, value in q[model.inputs[(o.text, o.legal_actions, o.task_id)]].items():
            out[cell, action] = value
    return out


def test_values_of_a_deterministic_corridor_are_exact(tmp_path):
    store = ExperienceStore(tmp_path / "a.db")
    play(store, 400, seed=0)
    model = EnvModel(["Corridor"])
    assert model.refresh(store) == store.count_decisions()
    q = corridor_q(model)
    # east from cell c reaches the exit (reward 1) after 4 − c steps; west costs a step back (in cell 0, one in place)
    for cell in range(4):
        assert q[cell, 1] == pytest.approx(GAMMA ** (3 - cell), abs=1e-5)
        assert q[cell, 0] == pytest.approx(GAMMA ** (5 - cell if cell > 0 else 4), abs=1e-5)


def test_refreshing_in_pieces_gives_the_model_of_the_whole_store(tmp_path):
    store = ExperienceStore(tmp_path / "a.db")
    piecewise = EnvModel(["Corridor"])
    for seed in range(3):
        play(store, 60, seed=seed)
        piecewise.refresh(store)
    assert piecewise.refresh(store) == 0  # nothing new
    whole = EnvModel(["Corridor"])
    whole.refresh(store)
    assert piecewise.visits == whole.visits and piecewise.next_counts == whole.next_counts
    assert corridor_q(piecewise) == corridor_q(whole)


def test_only_the_tracked_envs_are_counted(tmp_path):
    store = ExperienceStore(tmp_path / "a.db")
    play(store, 100, seed=0, envs=[make_env("FrozenLake-v1") for _ in range(2)])
    model = EnvModel(["Corridor"])
    assert model.refresh(store) == 0 and len(model) == 0
    play(store, 100, seed=1)
    assert model.refresh(store) > 0 and {key[2] for key in model.inputs} == {5}


def test_advantages_favour_the_better_action_and_an_unknown_input_gets_none(tmp_path):
    store = ExperienceStore(tmp_path / "a.db")
    play(store, 400, seed=0)
    model = EnvModel(["Corridor"])
    model.refresh(store)
    o = _at(2)
    key = (o.text, o.legal_actions, o.task_id)
    [advantage] = model.advantages([key], [np.array([0.25, 0.75])], GAMMA)
    assert advantage[1] > 0 > advantage[0]
    assert 0.25 * advantage[0] + 0.75 * advantage[1] == pytest.approx(0.0, abs=1e-9)  # centred on the policy
    unseen = ("You are in cell 9 of a corridor of 5 cells; the exit is at cell 4.", o.legal_actions, o.task_id)
    assert model.advantages([unseen], [np.array([0.5, 0.5])], GAMMA)[0].tolist() == [0.0, 0.0]


def test_an_untried_action_is_worth_zero_so_where_every_try_costs_it_is_tried_next():
    store = ExperienceStore("sqlite://")
    actions = ("north", "south", "pickup")
    for chosen, reward in ((0, -1.0), (1, -2.0), (0, -1.0)):  # a one-step game: two of three actions tried
        [episode] = store.start_episodes([EpisodeStart("Costly", seed=None, policy="test")])
        store.record_step([DecisionRecord(episode, 0, "Costly", 3, "s", "At the rank.", "prompt", actions, chosen,
                                          (1 / 3,) * 3, "test", None, reward, True, False)],
                          [EpisodeEnd(episode, reward, 1, False, False)])
    model = EnvModel(["Costly"])
    assert model.refresh(store) == 3
    [advantage] = model.advantages([("At the rank.", actions, 3)], [np.full(3, 1 / 3)], GAMMA)
    assert advantage.tolist() == pytest.approx([0.0, -1.0, 1.0])  # Q = (−1, −2, 0), centred on their mean −1
