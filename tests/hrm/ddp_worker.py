"""Run under torchrun by test_distributed.py: trains a tiny HRM on this rank's shard and saves the parameters."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from hrm import Hrm, TrainConfig, Trainer  # noqa: E402
from hrm.distributed import init_distributed, shutdown_distributed  # noqa: E402
from tests.hrm.tiny import random_batch, tiny_config  # noqa: E402


def shard(batch: dict, rank: int, world_size: int) -> dict:
    return {k: v.chunk(world_size)[rank] for k, v in batch.items()}


def main(out_dir: str, steps: int) -> None:
    torch.set_num_threads(1)
    info = init_distributed("cpu")
    torch.manual_seed(0)
    model = Hrm(tiny_config(halt_exploration_prob=0.0))
    if info.rank > 0:
        with torch.no_grad():  # a different init on other ranks: the trainer must broadcast rank 0's
            for p in model.parameters():
                p.add_(1.0)
    trainer = Trainer(model, TrainConfig(total_steps=steps, lr=3e-3, warmup_steps=1), "cpu")
    for step in range(steps):
        metrics = trainer.train_step(shard(random_batch(tiny_config(), 8, seed=step), info.rank, info.world_size))
    trainer.save(Path(out_dir) / "ckpt.pt")
    torch.save({"params": dict(trainer.model.named_parameters()), "metrics": metrics},
               Path(out_dir) / f"rank{info.rank}.pt")
    shutdown_distributed()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
