"""Distilling the HRM student (what `python train_hrm.py` runs)."""

import sys
from dataclasses import dataclass
from typing import Literal

import torch

from hrm import Hrm, HrmConfig, TrainConfig, Trainer
from hrm.cli import parse_args


@dataclass
class DistillArgs:
    """Distil the agent's HRM student from the experience store."""

    dry_run: bool = False
    """Build the model, run one forward/backward on random tokens, print the parameter count and the loss."""
    preset: Literal["agent-29m", "sudoku-27m"] = "agent-29m"
    """The HRM architecture."""
    batch_size: int = 16
    """Examples per step."""
    seed: int = 0
    """Seeds every random number of the run."""
    device: str | None = None
    """cpu, cuda, cuda:N or mps (default: the best available)."""
    mixed_precision: Literal["none", "bf16", "fp16"] = "none"
    """Autocast dtype of the forward pass."""


def dry_run(args: DistillArgs) -> dict[str, float]:
    """Runs one training step of the preset on random data; returns its parameter count and loss."""
    torch.manual_seed(args.seed)
    config = HrmConfig.preset(args.preset)
    model = Hrm(config)
    train_config = TrainConfig(total_steps=1, warmup_steps=0, mixed_precision=args.mixed_precision, seed=args.seed)
    trainer = Trainer(model, train_config, args.device)
    generator = torch.Generator().manual_seed(args.seed)
    inputs = torch.randint(0, config.vocab_size, (args.batch_size, config.seq_len), generator=generator)
    batch = {"inputs": inputs, "labels": inputs[:, -config.output_len:].clone(),  # the answer slots
             "task_ids": torch.randint(0, config.num_tasks, (args.batch_size,), generator=generator)}
    metrics = trainer.train_step(batch)
    return {"parameters": model.num_parameters(), "loss": metrics["lm_loss"], "device": str(trainer.device)}


def main(argv: list[str] | None = None) -> int:
    """Entry point of train_hrm.py; returns the process exit code."""
    args = parse_args(DistillArgs, argv, prog="train_hrm.py")
    if not args.dry_run:
        print("train_hrm.py: distillation from the experience store is not built yet; "
              "run `python train_hrm.py --dry-run` to check the model and the trainer", file=sys.stderr)
        return 2
    result = dry_run(args)
    print(f"{args.preset}: {result['parameters']:,} parameters | loss {result['loss']:.4f} "
          f"(one forward/backward on random tokens, batch {args.batch_size}, {result['device']})")
    return 0
