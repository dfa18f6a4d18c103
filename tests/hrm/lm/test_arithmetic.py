"""The synthetic arithmetic dataset: answers, disjoint splits, lengths, Abacus indices and deterministic batches."""

import torch

from hrm.lm.arithmetic import ArithmeticConfig, ArithmeticTask, significance, solve
from hrm.losses import IGNORE_INDEX


def test_answers_and_digit_significance():
    task = ArithmeticTask(ArithmeticConfig(heldout_size=10, ood_size=10))
    assert task.answer_text((12, "+", 7)) == "91"  # reversed: ones digit first
    assert task.read_answer("91") == "19"
    assert solve(9, "-", 4) == 5 and solve(12, "*", 3) == 36
    assert significance("a 305 + 7?") == [0, 0, 3, 2, 1, 0, 0, 0, 1, 0]
    batch = task.encode([(12, "+", 7)])
    text = task.tokenizer.decode(batch["inputs"][0].tolist())
    assert text == "What is 12 + 7?"
    assert batch["digit_pos"][0, 1 + text.index("12")].item() == 2  # <bos> first; tens digit of 12
    assert task.tokenizer.decode(batch["labels"][0][batch["labels"][0] != IGNORE_INDEX].tolist()) == "91"


def test_splits_are_disjoint_and_the_ood_split_is_longer():
    task = ArithmeticTask(ArithmeticConfig(min_digits=1, max_digits=2, heldout_size=300, ood_min_digits=3,
                                           ood_max_digits=4, ood_size=50, ops="+-*"))
    train = {p for step in range(50) for p in task.train_problems(step, 64)}
    assert not train & task.heldout_set
    assert len(task.heldout) == 300 and all(max(a, b) < 100 for a, _, b in task.heldout)
    assert all(max(a, b) >= 100 for a, _, b in task.ood)
    assert all(a >= b for a, op, b in train if op == "-")  # no negative answers
    assert {op for _, op, _ in train} == {"+", "-", "*"}


def test_training_batches_are_a_function_of_the_step():
    task = ArithmeticTask(ArithmeticConfig(heldout_size=20, ood_size=5))
    a, b = task.batch_at(7, 16), task.batch_at(7, 16)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["inputs"], task.batch_at(8, 16)["inputs"])
    assert a["inputs"].shape[1] == task.train_shape[0] and a["labels"].shape[1] == task.train_shape[1]
    # ranks split the same global batch
    halves = [task.batch_at(7, 8, rank, 2)["inputs"] for rank in range(2)]
    assert torch.equal(torch.stack(halves, 1).flatten(0, 1), a["inputs"])
