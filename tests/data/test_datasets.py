"""Student tensors from stored decisions: encoding, candidates, and a split by episode."""

import torch

from agent.oracle import OracleTeacher
from agent.runner import VectorRunner
from data.datasets import IGNORE_INDEX, StudentEncoder, build_distillation_data, split_episodes
from data.store import ExperienceStore
from data.tokenizer import gpt2_tokenizer


def test_encoder_left_pads_and_writes_candidates_into_the_answer_slots():
    encoder = StudentEncoder(seq_len=24, answer_len=3)
    batch = encoder.encode([("A F\nF G", ("left", "down"), 0), ("x " * 40, ("south", "pickup", "dropoff"), 2)])
    assert batch["inputs"].shape == (2, 24) and batch["candidates"].shape == (2, 3, 3)
    assert (batch["inputs"][:, -3:] == encoder.slot_id).all()
    assert batch["inputs"][0, 0] == encoder.pad_id  # short text: padded on the left
    assert gpt2_tokenizer().decode(batch["inputs"][1, :21]).endswith("Actions: south, pickup, dropoff")
    left = gpt2_tokenizer()(" left").input_ids
    assert batch["candidates"][0, 0, :len(left)].tolist() == left
    assert (batch["candidates"][0, 2] == IGNORE_INDEX).all()  # row 0 has 2 actions: the third is padding
    assert batch["task_ids"].tolist() == [0, 2]


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
