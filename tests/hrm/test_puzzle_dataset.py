"""The memory-mapped puzzle dataset: one augmented copy per group per epoch, rank shards, the sequential test split."""

import json
import shutil

import numpy as np
import pytest
import torch

from hrm.puzzles.dataset import DatasetError, PuzzleDataset

COPIES = 8  # tests/hrm/conftest.py: each group is a puzzle and 7 augmented copies


def test_arrays_are_memory_mapped_and_batches_are_int64_tensors(sudoku_dir):
    data = PuzzleDataset(sudoku_dir, "train", global_batch_size=8)
    assert isinstance(data.inputs, np.memmap) and isinstance(data.labels, np.memmap)
    batch = data.batch_at(0)
    assert batch["inputs"].shape == batch["labels"].shape == (8, 81)
    assert batch["task_ids"].shape == (8,)
    assert all(v.dtype == torch.int64 for v in batch.values())
    assert (batch["task_ids"] == 0).all()


def test_each_epoch_takes_one_copy_of_every_group(sudoku_dir):
    data = PuzzleDataset(sudoku_dir, "train", global_batch_size=4, seed=3)
    picks_per_epoch = []
    for epoch in range(6):
        examples, _ = data.epoch_order(epoch)
        assert sorted(examples // COPIES) == list(range(16))  # every group exactly once
        picks_per_epoch.append(examples[np.argsort(examples // COPIES)] % COPIES)
    assert len({p.tobytes() for p in picks_per_epoch}) == 6  # a different copy mix every epoch
    # Batches laid end to end replay the epoch orders: 16 groups / 4 per batch = 4 steps per epoch.
    epoch1 = torch.cat([data.batch_at(step)["inputs"] for step in range(4, 8)])
    assert torch.equal(epoch1, torch.from_numpy(data.inputs[data.epoch_order(1)[0]].astype(np.int64)))


def test_batches_straddle_epochs_without_dropping_examples(sudoku_dir):
    data = PuzzleDataset(sudoku_dir, "train", global_batch_size=6)  # 16 groups: epochs end mid-batch
    assert data.total_steps(3) == 8 and data.steps_per_epoch == pytest.approx(16 / 6)
    stream = torch.cat([data.batch_at(step)["inputs"] for step in range(8)])  # 48 rows = 3 epochs
    expected = np.concatenate([data.epoch_order(e)[0] for e in range(3)])
    assert torch.equal(stream, torch.from_numpy(data.inputs[expected].astype(np.int64)))


def test_batch_at_is_a_pure_function_of_the_step(sudoku_dir):
    a = PuzzleDataset(sudoku_dir, "train", global_batch_size=8, seed=1)
    b = PuzzleDataset(sudoku_dir, "train", global_batch_size=8, seed=1)
    later = a.batch_at(9)
    for step in range(9):
        a.batch_at(step)
    assert all(torch.equal(later[k], b.batch_at(9)[k]) for k in later)
    assert not torch.equal(later["inputs"], PuzzleDataset(sudoku_dir, "train", 8, seed=2).batch_at(9)["inputs"])


def test_ranks_split_each_global_batch(sudoku_dir):
    whole = PuzzleDataset(sudoku_dir, "train", global_batch_size=6)
    shards = [PuzzleDataset(sudoku_dir, "train", global_batch_size=6, rank=r, world_size=3) for r in range(3)]
    for step in (0, 5):
        joined = torch.cat([s.batch_at(step)["labels"] for s in shards])
        assert torch.equal(joined, whole.batch_at(step)["labels"])
    with pytest.raises(DatasetError, match="multiple of the 4 processes"):
        PuzzleDataset(sudoku_dir, "train", global_batch_size=6, rank=0, world_size=4)


def test_test_split_is_read_in_order_once_across_ranks(sudoku_dir):
    whole = torch.cat([b["inputs"] for b in PuzzleDataset(sudoku_dir, "test", 6).test_batches()])
    assert torch.equal(whole, torch.from_numpy(np.load(sudoku_dir / "test" / "all__inputs.npy").astype(np.int64)))
    ranks = [list(PuzzleDataset(sudoku_dir, "test", 6, rank=r, world_size=2).test_batches()) for r in range(2)]
    assert [len(b["inputs"]) for b in ranks[0]] == [3, 3, 3] and [len(b["inputs"]) for b in ranks[1]] == [3, 3, 1]
    interleaved = torch.cat([torch.cat((a["inputs"], b["inputs"])) for a, b in zip(*ranks, strict=True)])
    assert torch.equal(interleaved, whole)


def test_ignored_label_id_becomes_minus_100(sudoku_dir, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(sudoku_dir, copy)
    labels = np.load(copy / "test" / "all__labels.npy")
    labels[0, :5] = 0  # the pad id doubles as "no target" (ignore_label_id)
    np.save(copy / "test" / "all__labels.npy", labels)
    batch = next(PuzzleDataset(copy, "test", 4).test_batches())
    assert (batch["labels"][0, :5] == -100).all() and (batch["labels"][0, 5:] >= 2).all()


def test_missing_or_broken_metadata_is_one_clear_error(tmp_path, sudoku_dir):
    with pytest.raises(DatasetError, match="cannot read .*dataset.json.*python -m hrm.puzzles.build"):
        PuzzleDataset(tmp_path, "train", 8)
    broken = tmp_path / "broken"
    shutil.copytree(sudoku_dir, broken)
    (broken / "train" / "dataset.json").write_text("{not json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        PuzzleDataset(broken, "train", 8)
    (broken / "train" / "dataset.json").write_text(json.dumps({"seq_len": 81}))
    with pytest.raises(DatasetError, match="lacks a required field"):
        PuzzleDataset(broken, "train", 8)
