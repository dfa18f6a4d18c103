"""Distillation data from stored decisions: a split by episode, distinct rows, every decision counted."""

import torch

from agent.oracle import OracleTeacher
from agent.runner import VectorRunner
from agent.student import StudentEncoder
from data.datasets import build_distillation_data, split_episodes
from data.store import ExperienceStore


def test_split_is_by_episode_and_fixed_by_the_seed():
    train, held = split_episodes(range(50), 0.2, seed=3)
    assert not train & held and len(held) == 10 and train | held == set(range(50))
    assert split_episodes(range(50), 0.2, seed=3) == (train, held)
    assert split_episodes(range(50), 0.2, seed=4) != (train, held)


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
