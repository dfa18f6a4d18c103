"""The training core: exact resume, checkpoints, mixed precision, and that an HRM learns a small reasoning task."""

import json
import time

import pytest
import torch

from hrm import CheckpointError, Hrm, TrainConfig, Trainer, evaluate, fit, load_checkpoint, load_model
from hrm.runlog import MetricsLog
from tests.hrm.tiny import random_batch, tiny_config


def batch_at(step: int) -> dict[str, torch.Tensor]:
    return random_batch(tiny_config(), batch_size=8, seed=1000 + step)


def make_trainer(**train_overrides) -> Trainer:
    torch.manual_seed(0)
    config = TrainConfig(**{"total_steps": 8, "lr": 3e-3, "warmup_steps": 2, "lr_min_ratio": 0.1, **train_overrides})
    return Trainer(Hrm(tiny_config(halt_exploration_prob=0.5)), config, "cpu")


@pytest.mark.parametrize("optimizer", ["adam-atan2", "adamw"])
def test_resume_continues_bit_for_bit(tmp_path, optimizer):
    straight = make_trainer(optimizer=optimizer)
    for step in range(8):
        straight.train_step(batch_at(step))

    first = make_trainer(optimizer=optimizer)
    for step in range(3):
        first.train_step(batch_at(step))
    first.save(tmp_path / "ckpt.pt")
    torch.manual_seed(12345)  # the resumed run must not depend on the RNG state of the process that loads it
    resumed = Trainer.resume(tmp_path / "ckpt.pt", "cpu")
    assert resumed.step == 3
    for step in range(3, 8):
        resumed.train_step(batch_at(step))

    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert torch.equal(straight.carry.z_H, resumed.carry.z_H)
    assert torch.equal(straight.carry.halted, resumed.carry.halted)


def test_every_network_parameter_changes_in_training():
    trainer = make_trainer()
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    for step in range(3):
        trainer.train_step(batch_at(step))
    unchanged = [n for n, p in trainer.model.named_parameters() if torch.equal(before[n], p)]
    assert unchanged == []


def test_checkpoint_holds_configs_and_loads_with_weights_only(tmp_path):
    trainer = make_trainer()
    trainer.train_step(batch_at(0))
    path = trainer.save(tmp_path / "nested" / "ckpt.pt", data_cursor={"epoch": 0, "step": 1})
    state = load_checkpoint(path)  # weights_only=True inside
    assert state["model_config"]["hidden_size"] == 32 and state["train_config"]["lr"] == 3e-3
    assert state["data_cursor"] == {"epoch": 0, "step": 1}
    assert [p.name for p in path.parent.iterdir()] == ["ckpt.pt"]  # no temp file left behind
    model = load_model(path, "cpu")
    assert not model.training
    assert torch.equal(model.lm_head.weight, trainer.model.lm_head.weight)


def test_corrupt_or_missing_checkpoint_raises_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pt is unreadable"):
        load_model(bad)
    with pytest.raises(CheckpointError, match="does not exist"):
        Trainer.resume(tmp_path / "missing.pt")


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_steps_train(precision):
    trainer = make_trainer(mixed_precision=precision)
    losses = [trainer.train_step(batch_at(step % 2))["lm_loss"] for step in range(8)]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]


def test_fit_logs_jsonl_and_writes_the_final_checkpoint(tmp_path):
    trainer = make_trainer()
    log = MetricsLog(tmp_path / "metrics.jsonl")
    eval_batches = lambda: [random_batch(tiny_config(), batch_size=8, seed=7)]  # noqa: E731
    last = fit(trainer, batch_at, eval_batches=eval_batches, eval_every=4, checkpoint_path=tmp_path / "last.pt",
               log=log, log_every=2)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4, 6, 8]
    assert "eval_exact_accuracy" in records[1] and "eval_exact_accuracy" in records[3]
    assert last["step"] == 8
    assert Trainer.resume(tmp_path / "last.pt").step == 8


def sort_batch(config, batch_size: int, seed: int) -> dict[str, torch.Tensor]:
    batch = random_batch(config, batch_size, seed)
    return {**batch, "labels": batch["inputs"].sort(-1).values}


@pytest.mark.slow
@pytest.mark.timeout(900)  # ~11 s on an idle 2-core machine; far slower when other jobs share the cores
def test_hrm_learns_to_sort_a_sequence():
    """An HRM learns to sort 8 digits to ≥95 % held-out exact accuracy in well under a minute on CPU."""
    torch.manual_seed(0)
    config = tiny_config(vocab_size=11, seq_len=8, task_emb_dim=0, hidden_size=64, num_heads=4, H_cycles=1,
                         L_cycles=1, halt_max_steps=2, pos_encoding="learned")
    recipe = TrainConfig(total_steps=1500, lr=3e-3, warmup_steps=20, lr_min_ratio=0.05, loss_type="softmax")
    trainer = Trainer(Hrm(config), recipe, "cpu")
    held_out = [sort_batch(config, batch_size=512, seed=99)]  # training batches use seeds 0..1499
    start = time.perf_counter()
    fit(trainer, lambda step: sort_batch(config, batch_size=64, seed=step), eval_batches=lambda: held_out,
        eval_every=100, log_every=100, until=lambda m: m.get("eval_exact_accuracy", 0.0) >= 0.98)
    elapsed = time.perf_counter() - start
    final = evaluate(trainer.model, held_out, "softmax")
    print(f"sort: held-out exact accuracy {final['exact_accuracy']:.3f} after {trainer.step} steps, {elapsed:.1f}s")
    assert final["exact_accuracy"] >= 0.95
