"""Train an HRM × LM: `python -m hrm.lm.train`, the seed's flags, one process or under torchrun.

    python -m hrm.lm.train --dry_run 1                       # one step: the parameter count and a loss
    python -m hrm.lm.train --dataset synthetic --steps 3000 --val_every 500 --save_dir runs/lm/synthetic
    python -m hrm.lm.train --config lm.yaml --mixed_precision bf16 --grad_clip 1.0
    python -m hrm.lm.train --stop_at 1000                    # stop early, keeping the schedule of --steps ...
    python -m hrm.lm.train --resume runs/lm/synthetic/last.pt   # ... and continue bit for bit
    torchrun --nproc-per-node 2 -m hrm.lm.train --steps 3000                # data-parallel, as hrm.pretrain

Flags are TrainArgs fields; the seed's underscore spellings (--dry_run 1, --val_every) and dashes (--dry-run)
both work, and a YAML file given with --config fills the same fields (flags win). Every --val_every steps the run
scores held-out problems and the out-of-distribution split, logs metrics.jsonl and writes last.pt (model,
optimizer, ACT carry, RNG, step, model + train + run config, the tokenizer and the dataset config) atomically;
--resume continues it bit for bit.
"""

import argparse
import functools
import os
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Annotated, Literal

import torch
import yaml
from rich.console import Console

from hrm.checkpoint import CheckpointError, load_checkpoint
from hrm.cli import ConfigError, Range, build_parser, check_ranges, typed_values
from hrm.device import pick_device
from hrm.distributed import init_distributed, shutdown_distributed
from hrm.lm.arithmetic import ArithmeticConfig, ArithmeticTask
from hrm.lm.evaluate import evaluate_lm
from hrm.lm.model import HrmLm, LmConfig
from hrm.lm.text import TextConfig, TextDataError, TextTask
from hrm.lm.tokenizer import tokenizer_from_dict
from hrm.losses import act_loss
from hrm.runlog import MetricsLog, format_metrics
from hrm.trainer import TrainConfig, Trainer, fit

PROG = "python -m hrm.lm.train"
DATASETS = ("synthetic", "text")


@dataclass(frozen=True)
class TrainArgs:
    """Train an HRM encoder × decoder language model on synthetic arithmetic."""

    config: str | None = None
    """A YAML file of these settings (keys with _ or -); flags on the command line win."""
    dry_run: Annotated[int, Range(0, 1)] = 0
    """1: build the model, run one training step, print the parameter count and the loss, write nothing."""
    dataset: str = "synthetic"
    """The data: synthetic (arithmetic problems drawn on the fly) or text (--text_file, with a BPE tokenizer)."""
    steps: Annotated[int, Range(1)] = 3000
    """Optimizer steps (one ACT segment each); the schedule ends here."""
    val_every: Annotated[int, Range(1)] = 500
    """Steps between evaluations and checkpoints (there is always one at the end)."""
    save_dir: str = "runs/lm/synthetic"
    """Where last.pt and metrics.jsonl go."""
    resume: str | None = None
    """A last.pt to continue from (its model, data, batch and seed are kept)."""
    batch_size: Annotated[int, Range(1)] = 128
    """Examples per optimizer step, summed over torchrun processes."""
    lr: Annotated[float, Range(0, open_low=True)] = 3e-3
    lr_min_ratio: Annotated[float, Range(0, 1)] = 0.1
    """The cosine floor as a fraction of lr."""
    warmup_steps: Annotated[int, Range(0)] = 100
    weight_decay: Annotated[float, Range(0)] = 0.1
    grad_clip: Annotated[float, Range(0)] = 1.0
    """Clip the gradient norm to this; 0 disables clipping."""
    mixed_precision: Literal["none", "bf16", "fp16"] = "none"
    q_continue: bool = True
    """Train Q-continue on the bootstrapped target (one more segment per step without gradient)."""
    seed: int = 0
    """Seeds the model, the data and ACT exploration."""
    device: str | None = None
    """cpu, cuda or mps (default: the best available)."""
    log_every: Annotated[int, Range(1)] = 50
    max_seconds: Annotated[float, Range(0)] = 0.0
    """Stop after this much training time and save (0: no limit)."""
    stop_at: Annotated[int, Range(0)] = 0
    """Stop and save at this step, keeping the schedule of --steps, to continue later with --resume (0: run on)."""
    # --- the synthetic dataset (hrm.lm.arithmetic.ArithmeticConfig) ---
    ops: str = "+"
    """Operations, any of "+-*"."""
    min_digits: Annotated[int, Range(1)] = 1
    max_digits: Annotated[int, Range(1)] = 5
    ood_min_digits: Annotated[int, Range(1)] = 6
    ood_max_digits: Annotated[int, Range(1)] = 8
    reverse_answer: bool = True
    """Write answers least significant digit first (generation turns them back)."""
    heldout_size: Annotated[int, Range(1)] = 2000
    ood_size: Annotated[int, Range(1)] = 500
    abacus_offset: Annotated[int, Range(0)] = 10
    """Random shift of the digit indices in training (length generalisation)."""
    # --- the text dataset (hrm.lm.text) ---
    text_file: str | None = None
    """For --dataset text: a file of "prompt<TAB>answer" lines (every tenth prompt is held out)."""
    bpe_vocab: Annotated[int, Range(8)] = 1000
    """For --dataset text: the BPE vocabulary size."""
    # --- the model (hrm.lm.model.LmConfig) ---
    bypass_hrm: bool = False
    """The ablation: the same blocks run once as a plain encoder (same parameter count, no ACT)."""
    encoder_positions: Literal["sequence", "abacus"] = "sequence"
    """The encoder's rotary positions: token order, or digit places (position coupling; longer numbers)."""
    hidden_size: Annotated[int, Range(1)] = 128
    num_heads: Annotated[int, Range(1)] = 4
    expansion: Annotated[float, Range(0, open_low=True)] = 2.0
    h_layers: Annotated[int, Range(1)] = 1
    l_layers: Annotated[int, Range(1)] = 1
    h_cycles: Annotated[int, Range(1)] = 2
    l_cycles: Annotated[int, Range(1)] = 2
    halt_max_steps: Annotated[int, Range(1)] = 2
    """The most ACT segments per prompt (each training step decodes one; deep supervision)."""
    decoder_layers: Annotated[int, Range(1)] = 2


# What a resumed run keeps: the model, the data and the batches it sees.
DATA_FIELDS = ("ops", "min_digits", "max_digits", "ood_min_digits", "ood_max_digits", "reverse_answer",
               "heldout_size", "ood_size", "abacus_offset")
MODEL_FIELDS = ("bypass_hrm", "encoder_positions", "hidden_size", "num_heads", "expansion", "h_layers", "l_layers",
                "h_cycles", "l_cycles", "halt_max_steps", "decoder_layers")
FIXED_ON_RESUME = ("dataset", "batch_size", "seed", "text_file", "bpe_vocab", *DATA_FIELDS, *MODEL_FIELDS)
NOT_INHERITED = ("config", "dry_run", "resume", "stop_at", "max_seconds")  # about one invocation, not the run


def normalize_argv(argv: list[str]) -> list[str]:
    """Returns argv with --flag_name spelled --flag-name, and a bare --dry-run read as --dry-run 1."""
    out = []
    for i, arg in enumerate(argv):
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            arg = name.replace("_", "-") + eq + value
            if arg == "--dry-run" and (i + 1 == len(argv) or argv[i + 1].startswith("-")):
                out += [arg, "1"]
                continue
        out.append(arg)
    return out


def read_yaml(path: str) -> dict:
    """Returns the typed TrainArgs settings in YAML file `path`; raises ConfigError naming a bad file or key."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except OSError as e:
        raise ConfigError(f"cannot read --config {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"--config {path} is not valid YAML ({str(e).splitlines()[0]})") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict) or any(isinstance(v, dict | list) for v in raw.values()):
        raise ConfigError(f"--config {path} must map setting names to single values")
    values = {str(k).replace("-", "_"): "none" if v is None else str(v) for k, v in raw.items()}
    try:
        return typed_values(TrainArgs, values)
    except ConfigError as e:
        raise ConfigError(f"--config {path}: {e}") from None


def parse_train_args(argv: list[str]) -> TrainArgs:
    """Returns the run's settings: defaults < the stored run (--resume) < the YAML file (--config) < flags.

    Raises ConfigError or CheckpointError with one line for a user's mistake.
    """
    parser = build_parser(TrainArgs, PROG)
    if any(arg in ("-h", "--help") for arg in argv):
        parser.parse_args(["--help"])  # prints the flags with their defaults and exits
    for action in parser._actions:  # keep only what was typed, so YAML and stored settings show through
        if action.dest != "help":
            action.default = argparse.SUPPRESS
    given = vars(parser.parse_args(normalize_argv(argv)))
    settings = read_yaml(given["config"]) if given.get("config") else {}
    settings.update(given)
    if settings.get("resume"):
        stored = load_checkpoint(settings["resume"]).get("run_config")
        if not isinstance(stored, dict):
            raise CheckpointError(f"checkpoint {settings['resume']} was not written by {PROG}")
        changed = [k for k in FIXED_ON_RESUME if k in settings and settings[k] != stored.get(k)]
        if changed:
            raise ConfigError(f"a resumed run keeps its {', '.join(changed)}; drop them or start a new run")
        known = {f.name for f in fields(TrainArgs)} - set(NOT_INHERITED)
        settings = {**{k: v for k, v in stored.items() if k in known}, **settings}
    args = TrainArgs(**settings)
    try:
        check_ranges(args)
        make_task(args)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return args


def make_task(args: TrainArgs, tokenizer: dict | None = None) -> ArithmeticTask | TextTask:
    """Returns the dataset named by --dataset (text: with `tokenizer`, a stored one, else one trained on the file);
    raises ConfigError for an unknown name or unusable text file."""
    if args.dataset not in DATASETS:
        raise ConfigError(f"unknown dataset {args.dataset!r}; choose one of: {', '.join(DATASETS)}")
    if args.dataset == "text":
        if not args.text_file:
            raise ConfigError("--dataset text needs --text_file FILE (lines of prompt<TAB>answer)")
        try:
            return TextTask(TextConfig(args.text_file, args.bpe_vocab, args.seed),
                            tokenizer_from_dict(tokenizer) if tokenizer else None)
        except TextDataError as e:
            raise ConfigError(str(e)) from None
    return ArithmeticTask(ArithmeticConfig(**{k: getattr(args, k) for k in DATA_FIELDS}, seed=args.seed))


def model_config(args: TrainArgs, task: ArithmeticTask | TextTask) -> LmConfig:
    """Returns the architecture: the model flags, the tokenizer's vocabulary and room for every split's prompts."""
    return LmConfig(vocab_size=task.tokenizer.vocab_size, prompt_len=task.max_shape[0], hidden_size=args.hidden_size,
                    num_heads=args.num_heads, expansion=args.expansion, H_layers=args.h_layers,
                    L_layers=args.l_layers, H_cycles=args.h_cycles, L_cycles=args.l_cycles,
                    halt_max_steps=args.halt_max_steps, decoder_layers=args.decoder_layers,
                    max_positions=max(64, task.max_shape[1] + args.abacus_offset + 2), bypass_hrm=args.bypass_hrm,
                    encoder_positions=args.encoder_positions)


def train_config(args: TrainArgs) -> TrainConfig:
    """Returns how the trainer optimises: AdamATan2, warmup + cosine, softmax cross-entropy."""
    return TrainConfig(total_steps=args.steps, lr=args.lr, lr_min_ratio=args.lr_min_ratio,
                       warmup_steps=args.warmup_steps, weight_decay=args.weight_decay, loss_type="softmax",
                       continue_loss=args.q_continue, grad_clip=args.grad_clip,
                       mixed_precision=args.mixed_precision, seed=args.seed)


def build_trainer(args: TrainArgs, task: ArithmeticTask | TextTask, device: torch.device) -> Trainer:
    """Returns a Trainer of a fresh HRM × LM (seeded with args.seed), or of the run stored at --resume."""
    torch.manual_seed(args.seed)
    config = train_config(args)
    loss_fn = functools.partial(act_loss, loss_type="softmax", continue_loss=args.q_continue)
    trainer = Trainer(HrmLm(model_config(args, task)), config, device, loss_fn)
    if args.resume:
        trainer.load_state_dict(load_checkpoint(args.resume))
    return trainer


def evaluate_task(model: HrmLm, task: ArithmeticTask | TextTask, mixed_precision: str = "none") -> dict[str, float]:
    """Returns held-out metrics, then the out-of-distribution split's prefixed "ood_" (when there is one)."""
    out = evaluate_lm(model, task.eval_batches("heldout"), mixed_precision=mixed_precision)
    if not task.ood:
        return out
    ood = evaluate_lm(model, task.eval_batches("ood"), mixed_precision=mixed_precision)
    return {**out, **{f"ood_{k}": v for k, v in ood.items()}}


def checkpoint_extra(args: TrainArgs, task: ArithmeticTask | TextTask, trainer: Trainer) -> dict:
    """Returns what a checkpoint holds beside the trainer's state: run config, tokenizer, dataset, data cursor."""
    return {"run_config": asdict(args), "tokenizer": task.tokenizer.to_dict(),
            "dataset": {"name": args.dataset, "config": asdict(task.config), "shape": list(task.max_shape)},
            "data_cursor": {"step": trainer.step}}


def train(args: TrainArgs, console: Console | None = None) -> tuple[Trainer, dict[str, float]]:
    """Runs (or resumes) the training of `args`; returns the trainer and the last metrics."""
    console = console or Console(stderr=True, soft_wrap=True)
    device = pick_device(args.device)
    info = init_distributed(device.type)
    if device.type == "cuda" and info.world_size > 1:
        device = torch.device("cuda", info.local_rank)
    if args.batch_size % info.world_size:
        raise ConfigError(f"batch_size {args.batch_size} does not split over {info.world_size} processes")
    task = make_task(args, load_checkpoint(args.resume).get("tokenizer") if args.resume else None)
    trainer = build_trainer(args, task, device)
    if info.world_size > 1 and not args.resume:
        torch.manual_seed(args.seed + info.rank)  # ACT exploration differs per rank; the model is rank 0's
    per_rank = args.batch_size // info.world_size

    def batch_at(step: int) -> dict[str, torch.Tensor]:
        return task.batch_at(step, per_rank, info.rank, info.world_size)

    kind = "bypass (plain encoder)" if args.bypass_hrm else "HRM"
    params = trainer.model.num_parameters()
    if args.dry_run:
        metrics = trainer.train_step(batch_at(trainer.step))
        print(f"{PROG}: dry run | {params:,} parameters ({kind} encoder) | loss {metrics['lm_loss']:.4f} "
              f"(token cross-entropy) | q_halt_loss {metrics['q_halt_loss']:.4f}")
        return trainer, metrics

    save_dir = Path(args.save_dir)
    if info.is_main:
        T, A = task.train_shape
        data = (f"{args.min_digits}-{args.max_digits} digits '{args.ops}', held-out {len(task.heldout)}, ood "
                f"{args.ood_min_digits}-{args.ood_max_digits} digits {len(task.ood)}" if args.dataset == "synthetic"
                else f"{args.text_file}, {len(task.train)} pairs, held-out {len(task.heldout)}")
        console.print(f"{PROG}: {params:,} parameters ({kind} encoder) | {args.dataset}: {data} | prompt {T} tokens, "
                      f"answer {A} | {args.steps} steps of {args.batch_size} | {device} × {info.world_size} | "
                      f"{save_dir}")
    log = MetricsLog(save_dir / "metrics.jsonl") if info.is_main else None
    start = time.monotonic()

    def stop(_: dict) -> bool:
        return ((args.max_seconds and time.monotonic() - start >= args.max_seconds)
                or (args.stop_at and trainer.step >= args.stop_at))

    last = fit(trainer, batch_at, eval_batches=lambda: (), eval_every=args.val_every,
               evaluator=lambda model, _: evaluate_task(model, task, args.mixed_precision),
               checkpoint_path=save_dir / "last.pt", checkpoint_every=args.val_every, log=log,
               log_every=args.log_every, console=console,
               until=stop,
               checkpoint_extra=lambda: checkpoint_extra(args, task, trainer))
    return trainer, last


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m hrm.lm.train`; returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parse_train_args(argv)
        _, last = train(args)
    except (ConfigError, CheckpointError) as e:
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    shutdown_distributed()
    if int(os.environ.get("RANK", "0")) == 0 and not args.dry_run:
        print(format_metrics(last))
    return 0


if __name__ == "__main__":
    sys.exit(main())
