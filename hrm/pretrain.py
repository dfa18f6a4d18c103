"""Pretrain an HRM on a puzzle dataset: the seed's pretrain.py on any device, in one process or under torchrun.

    python -m hrm.pretrain data_path=runs/data/sudoku-1k-aug-1000 epochs=20000 eval_interval=2000 \\
        global_batch_size=384 lr=7e-5 puzzle_emb_lr=7e-5 weight_decay=1.0 puzzle_emb_weight_decay=1.0
    torchrun --nproc-per-node 8 -m hrm.pretrain data_path=...      # the same run, data-parallel
    python -m hrm.pretrain resume=runs/pretrain/RUN/last.pt        # continue a run where its checkpoint left it

Settings are PretrainConfig fields as key=value; arch.KEY=VALUE overrides a field of the HrmConfig preset
(`python -m hrm.pretrain --help` lists both). Under torchrun every rank trains on its share of each global
batch and gradients are all-reduced (gloo on CPU, NCCL on CUDA); rank 0 names the run and broadcasts the config,
and only rank 0 logs and writes files. The run folder holds last.pt (model, optimizers, ACT carry, RNG, step and
data cursor, model + train + run config), config.json, source/ (the model code) and metrics.jsonl.
"""

import importlib.util
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Literal

import torch
from rich.console import Console

import hrm.layers
import hrm.losses
import hrm.model
from hrm.checkpoint import CheckpointError, load_checkpoint, model_config_from
from hrm.cli import ConfigError, key_value_help, split_key_values, typed_values
from hrm.device import pick_device
from hrm.distributed import gather_objects, init_distributed, shutdown_distributed
from hrm.model import Hrm, HrmConfig
from hrm.puzzles.dataset import DatasetError, PuzzleDataset, PuzzleMetadata, load_metadata
from hrm.runlog import MetricsLog, format_metrics
from hrm.trainer import TrainConfig, Trainer, fit

PROG = "python -m hrm.pretrain"


@dataclass(frozen=True)
class PretrainConfig:
    """Pretrain an HRM on a puzzle dataset built by `python -m hrm.puzzles.build` (the seed's pretrain.py)."""

    data_path: str = ""
    """The dataset folder (holds train/ and test/, each with dataset.json). Required."""
    epochs: int = 100000
    """Passes over the training groups (each pass takes one augmented copy of every puzzle)."""
    eval_interval: int | None = 10000
    """Epochs between evaluations on the test split, each followed by a checkpoint (there is always one at the
    end); none: only at the end."""
    global_batch_size: int = 768
    """Examples per optimizer step, summed over all torchrun processes."""
    lr: float = 1e-4
    lr_min_ratio: float = 1.0
    """The cosine floor as a fraction of lr (1.0: constant after warmup, as the seed)."""
    lr_warmup_steps: int = 2000
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    puzzle_emb_lr: float = 1e-2
    """Sign-SGD learning rate of the puzzle (task) embedding."""
    puzzle_emb_weight_decay: float = 0.1
    loss_type: Literal["stablemax", "softmax"] = "stablemax"
    grad_clip: float = 0.0
    """Clip the network's gradient norm to this; 0 disables clipping (the seed does not clip)."""
    mixed_precision: Literal["none", "bf16", "fp16"] = "none"
    preset: Literal["sudoku-27m", "agent-29m"] = "sudoku-27m"
    """The architecture; arch.KEY=VALUE overrides its fields (vocab, seq_len and task count come from the data)."""
    arch: dict = field(default_factory=dict)
    checkpoint_path: str | None = None
    """The run folder (default: runs/pretrain/<dataset>-<date>-<time>, named on rank 0)."""
    resume: str | None = None
    """A last.pt to continue from; the run keeps its stored settings unless given here (data, batch, seed,
    preset and arch cannot change)."""
    seed: int = 0
    """Seeds the model, the data order and ACT exploration (rank r uses seed + r for exploration)."""
    device: str | None = None
    """cpu, cuda or mps (default: the best available; under torchrun with CUDA, the local rank's GPU)."""
    log_every: int = 50
    """Steps between training metric lines."""
    wandb: bool = False
    """Also log to Weights & Biases (needs `pip install wandb`)."""
    tensorboard: str | None = None
    """Also write the metrics as TensorBoard scalars to this folder."""
    project_name: str | None = None
    """W&B project (default: "<dataset> HRM")."""
    run_name: str | None = None
    """W&B run name (default: the run folder's name)."""

    def __post_init__(self):
        positive = {"epochs": self.epochs, "eval_interval": 1 if self.eval_interval is None else self.eval_interval,
                    "global_batch_size": self.global_batch_size, "log_every": self.log_every}
        for name, value in positive.items():
            if value < 1:
                raise ConfigError(f"{name} must be at least 1, got {value}")
        for name in ("lr", "lr_warmup_steps", "weight_decay", "puzzle_emb_lr", "puzzle_emb_weight_decay", "grad_clip"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative, got {getattr(self, name)}")


FIXED_ON_RESUME = ("data_path", "global_batch_size", "seed", "preset")
FROM_DATASET = ("vocab_size", "seq_len", "num_tasks")


def parse_config(argv: list[str]) -> PretrainConfig:
    """Returns the run's config from key=value arguments (merged into the stored one with resume=…).

    Raises ConfigError, DatasetError or CheckpointError with a one-line message for a user's mistake.
    """
    raw = split_key_values(argv)
    arch = typed_values(HrmConfig, {k[5:]: v for k, v in raw.items() if k.startswith("arch.")}, prefix="arch.")
    given = typed_values(PretrainConfig, {k: v for k, v in raw.items() if not k.startswith("arch.")})
    if given.get("resume"):
        stored = load_checkpoint(given["resume"]).get("pretrain_config")
        if not isinstance(stored, dict):
            raise CheckpointError(f"checkpoint {given['resume']} was not written by {PROG}")
        changed = [k for k in FIXED_ON_RESUME if k in given and given[k] != stored[k]] + [f"arch.{k}" for k in arch]
        if changed:
            raise ConfigError(f"a resumed run keeps its {', '.join(changed)}; drop them or start a new run")
        known = {f.name for f in fields(PretrainConfig)}
        config = PretrainConfig(**{**{k: v for k, v in stored.items() if k in known}, **given})
    else:
        if not given.get("data_path"):
            raise ConfigError("data_path=DIR is required (build one with `python -m hrm.puzzles.build`)")
        config = PretrainConfig(**given, arch=arch)
    model_config(config, load_metadata(Path(config.data_path) / "train"))  # fail now on a bad arch or dataset
    try:
        pick_device(config.device)
    except (ValueError, RuntimeError) as e:
        raise ConfigError(f"device={config.device}: {str(e).splitlines()[0]}") from e
    if config.wandb and importlib.util.find_spec("wandb") is None:
        raise ConfigError("wandb=true needs the wandb package: pip install wandb")
    return config


def model_config(config: PretrainConfig, metadata: PuzzleMetadata) -> HrmConfig:
    """Returns the preset with the arch overrides and the dataset's vocab, seq_len and identifier count."""
    bad = [k for k in FROM_DATASET if k in config.arch]
    if bad:
        raise ConfigError(f"arch.{bad[0]} comes from the dataset's dataset.json and cannot be set")
    base = HrmConfig.preset(config.preset)
    arch = dict(config.arch)
    if "hidden_size" in arch and "task_emb_dim" not in arch and base.task_emb_dim == base.hidden_size:
        arch["task_emb_dim"] = arch["hidden_size"]  # the seed's puzzle_emb_ndim: ${.hidden_size}
    try:
        return replace(base, **arch, vocab_size=metadata.vocab_size, seq_len=metadata.seq_len,
                       num_tasks=metadata.num_puzzle_identifiers)
    except ValueError as e:
        raise ConfigError(f"bad arch settings: {e}") from e


def train_config(config: PretrainConfig, total_steps: int) -> TrainConfig:
    """Returns the trainer's config for this run."""
    return TrainConfig(total_steps=total_steps, lr=config.lr, lr_min_ratio=config.lr_min_ratio,
                       warmup_steps=config.lr_warmup_steps, weight_decay=config.weight_decay,
                       betas=(config.beta1, config.beta2), task_emb_lr=config.puzzle_emb_lr,
                       task_emb_weight_decay=config.puzzle_emb_weight_decay, loss_type=config.loss_type,
                       grad_clip=config.grad_clip, mixed_precision=config.mixed_precision, seed=config.seed)


def name_run(config: PretrainConfig) -> PretrainConfig:
    """Returns `config` with its run folder and names filled in (rank 0 does this; the others receive it)."""
    dataset = Path(config.data_path).resolve().name
    path = config.checkpoint_path or str(Path("runs") / "pretrain" / f"{dataset}-{time.strftime('%Y%m%d-%H%M%S')}")
    return replace(config, checkpoint_path=path, project_name=config.project_name or f"{dataset} HRM",
                   run_name=config.run_name or Path(path).name)


class PretrainLog(MetricsLog):
    """The run's metrics: JSONL records with the epoch added, mirrored to Weights & Biases when asked for."""

    def __init__(self, path: Path, data: PuzzleDataset, wandb_run=None, tensorboard: str | None = None):
        super().__init__(path, tensorboard)
        self.data, self.wandb_run = data, wandb_run

    def write(self, record: dict) -> None:
        """Appends one record, with the epochs of data consumed so far."""
        record = {"epoch": round(self.data.epoch_of(record["step"]), 4), **record}
        super().write(record)
        if self.wandb_run is not None:
            self.wandb_run.log(record, step=record["step"])


def write_run_files(run_dir: Path, config: PretrainConfig, trainer: Trainer, data: PuzzleDataset) -> None:
    """Writes config.json and a copy of the model source into the run folder."""
    (run_dir / "source").mkdir(parents=True, exist_ok=True)
    for module in (hrm.model, hrm.layers, hrm.losses):
        shutil.copy(module.__file__, run_dir / "source" / Path(module.__file__).name)
    summary = {"pretrain": asdict(config), "model": trainer.model.config.to_dict(), "train": asdict(trainer.config),
               "parameters": trainer.model.num_parameters(), "train_groups": data.num_groups,
               "train_examples": data.num_examples, "world_size": data.world_size}
    (run_dir / "config.json").write_text(json.dumps(summary, indent=2) + "\n")


def pretrain(config: PretrainConfig, console: Console | None = None) -> tuple[Trainer, dict[str, float]]:
    """Runs (or resumes) the training of `config`; returns the trainer and the last metrics."""
    console = console or Console(stderr=True, soft_wrap=True)  # one metrics line stays one line
    device = pick_device(config.device)
    info = init_distributed(device.type)
    if device.type == "cuda" and info.world_size > 1:
        device = torch.device("cuda", info.local_rank)
    config = gather_objects(name_run(config) if info.is_main else None)[0]  # every rank takes rank 0's names
    torch.manual_seed(config.seed + info.rank)

    train = PuzzleDataset(config.data_path, "train", config.global_batch_size, info.rank, info.world_size,
                          config.seed)
    test = PuzzleDataset(config.data_path, "test", config.global_batch_size, info.rank, info.world_size)
    total_steps = train.total_steps(config.epochs)
    if total_steps < 1:
        raise ConfigError(f"epochs={config.epochs} of {train.num_groups} groups do not fill one global batch of "
                          f"{config.global_batch_size}")
    if config.resume:
        state = load_checkpoint(config.resume)
        trainer = Trainer(Hrm(model_config_from(state, config.resume)), train_config(config, total_steps), device)
        trainer.load_state_dict(state)
    else:
        trainer = Trainer(Hrm(model_config(config, train.metadata)), train_config(config, total_steps), device)

    run_dir = Path(config.checkpoint_path)
    eval_every = max(1, round(config.eval_interval * train.steps_per_epoch)) if config.eval_interval else 0
    wandb_run = None
    if info.is_main:
        write_run_files(run_dir, config, trainer, train)
        if config.wandb:
            import wandb  # optional: only imported when asked for

            wandb_run = wandb.init(project=config.project_name, name=config.run_name, config=asdict(config),
                                   dir=str(run_dir), resume="allow")
        console.print(f"{PROG}: {trainer.model.num_parameters():,} parameters | train {train.num_groups} groups "
                      f"({train.num_examples} examples) | test {test.num_examples} | {total_steps} steps of "
                      f"{config.global_batch_size} ({train.steps_per_epoch:.3g} per epoch), eval every "
                      f"{eval_every or total_steps} | {device} × {info.world_size} | {run_dir}")
        if trainer.step >= total_steps:
            console.print(f"{PROG}: {config.resume} is already at step {trainer.step} of {total_steps}; "
                          f"give a larger epochs= to train on")
    log = PretrainLog(run_dir / "metrics.jsonl", train, wandb_run, config.tensorboard) if info.is_main else None

    def checkpoint_extra() -> dict:
        return {"pretrain_config": asdict(config),
                "data_cursor": {"step": trainer.step, "epoch": train.epoch_of(trainer.step)}}

    last = fit(trainer, train.batch_at, eval_batches=test.test_batches, eval_every=eval_every,
               checkpoint_path=run_dir / "last.pt", checkpoint_every=eval_every, log=log,
               log_every=config.log_every, console=console, checkpoint_extra=checkpoint_extra)
    if wandb_run is not None:
        wandb_run.finish()
    return trainer, last


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m hrm.pretrain`; returns the process exit code."""
    argv = sys.argv[1:] if argv is None else argv
    if any(arg in ("-h", "--help") for arg in argv):
        print(key_value_help(PretrainConfig(), PROG, {"arch": HrmConfig.preset("sudoku-27m")}))
        return 0
    try:
        config = parse_config(argv)
        _, last = pretrain(config)
    except (ConfigError, DatasetError, CheckpointError) as e:
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    shutdown_distributed()
    if int(os.environ.get("RANK", "0")) == 0:
        print(format_metrics(last))
    return 0


if __name__ == "__main__":
    sys.exit(main())
