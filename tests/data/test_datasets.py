"""Distillation data from stored decisions: a split by episode, distinct rows, every decision counted, grouped by the
database exactly as the row-by-row build grouped."""

import pytest
import torch

from agent.oracle import OracleTeacher
from agent.policy import RandomPolicy
from agent.runner import VectorRunner
from agent.student import StudentEncoder
from bench.store import row_by_row_build
from data.datasets import build_distillation_data, split_episodes
from data.store import ExperienceStore


def test_split_is_by_episode_and_fixed_by_the_seed():
    train, held = split_episodes(range(1000), 0.2, seed=3)
    assert not train & held and 160 <= len(held) <= 240 and train | held == set(range(1000))
    assert split_episodes(range(1000), 0.2, seed=3) == (train, held)
    assert split_episodes(range(1000), 0.2, seed=4) != (train, held)


def test_an_episode_keeps_its_side_as_the_store_grows():
    """A student warm-started from an earlier run must not be scored on episodes that run trained on."""
    train, held = split_episodes(range(100, 400), 0.2, seed=0)
    more_train, more_held = split_episodes(range(100, 2000), 0.2, seed=0)
    assert held <= more_held and train <= more_train
    assert split_episodes([7], 0.2, seed=0) == ({7}, set())
    assert all(len(side) == 1 for side in split_episodes([7, 8], 0.2, seed=0))  # one each side when possible


def test_no_episode_is_on_both_sides(tmp_path):
    store = ExperienceStore(tmp_path / "aegis.db")
    VectorRunner(["FrozenLake-v1", "Taxi-v4"] * 2, store, OracleTeacher(seed=0), seed=0).run(max_episodes=12)
    data = build_distillation_data(store, StudentEncoder(128, 4), held_out_fraction=0.25, seed=0)
    assert not set(data.train.episode_ids) & set(data.held_out.episode_ids)
    assert len(data.train) + len(data.held_out) == store.count_decisions()
    probs = data.train.tensors["teacher_probs"]
    torch.testing.assert_close(probs.sum(-1), torch.ones(len(probs)))


def test_distinct_training_keeps_one_row_per_state_and_counts_every_decision(tmp_path):
    store = ExperienceStore(tmp_path / "aegis.db")
    VectorRunner(["FrozenLake-v1"] * 4, store, OracleTeacher(seed=0), seed=0).run(max_decisions=400)
    encoder = StudentEncoder(64, 4)
    every = build_distillation_data(store, encoder, seed=0)
    distinct = build_distillation_data(store, encoder, seed=0, distinct=True)
    assert len(every.train.states) == len(every.train) == len(distinct.train)
    assert len(distinct.train.states) == len(set(distinct.train.states)) < 16  # FrozenLake 4×4 has 16 cells
    assert set(distinct.train.states) == set(every.train.states)
    held_out = store.count_decisions() - len(every.train)
    assert distinct.held_out.tensors["counts"].sum() == len(every.held_out) == held_out


@pytest.fixture(scope="module")
def mixed_store(tmp_path_factory):
    """A store with failing and succeeding teacher episodes on two envs, plus decisions of a registered student."""
    store = ExperienceStore(tmp_path_factory.mktemp("mixed") / "aegis.db")
    VectorRunner(["FrozenLake-v1", "Taxi-v4"] * 2, store, OracleTeacher(epsilon=0.5, seed=0), seed=0).run(
        max_decisions=500)
    student = RandomPolicy(seed=1)
    student.name, student.version = "hrm:v1", 1
    VectorRunner(["FrozenLake-v1", "Taxi-v4"], store, student, seed=1).run(max_decisions=60)
    return store


@pytest.mark.parametrize("distinct", [True, False])
@pytest.mark.parametrize(("envs", "up_to"), [(None, None), (["Taxi-v4"], None), (None, 300)])
def test_the_database_grouping_builds_what_the_row_by_row_build_did(mixed_store, distinct, envs, up_to):
    encoder = StudentEncoder(96, 4)
    args = {"held_out_fraction": 0.25, "seed": 1, "envs": envs, "failure_weight": 0.25, "distinct": distinct,
            "up_to": up_to}
    new, old = build_distillation_data(mixed_store, encoder, **args), row_by_row_build(mixed_store, encoder, **args)
    for got, expected in ((new.train, old.train), (new.held_out, old.held_out)):
        assert got.episode_ids == expected.episode_ids and got.states == expected.states
        assert got.tensors.keys() == expected.tensors.keys()
        for name, tensor in expected.tensors.items():
            torch.testing.assert_close(got.tensors[name], tensor, msg=name)
    weights = torch.cat([new.train.tensors["weights"], new.held_out.tensors["weights"]])
    assert (weights < 1).any() or envs == ["Taxi-v4"]  # FrozenLake episodes failed: the weighting is exercised


def test_the_grouping_is_the_same_on_each_backend(db_url):
    store = ExperienceStore(db_url)
    VectorRunner(["FrozenLake-v1", "Taxi-v4"] * 2, store, OracleTeacher(epsilon=0.5, seed=0), seed=0).run(
        max_decisions=200)
    encoder = StudentEncoder(96, 4)
    for distinct in (True, False):
        args = {"failure_weight": 0.5, "distinct": distinct, "envs": ["FrozenLake-v1"], "up_to": 150}
        new, old = build_distillation_data(store, encoder, **args), row_by_row_build(store, encoder, **args)
        assert new.train.states == old.train.states and new.held_out.states == old.held_out.states
        torch.testing.assert_close(new.train.tensors, old.train.tensors)
        torch.testing.assert_close(new.held_out.tensors, old.held_out.tensors)
