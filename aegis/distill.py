"""Distilling the HRM student from the teacher's stored decisions (what `python train_hrm.py` runs).

Reads the experience store, splits the teacher's decisions by episode, trains the `agent-29m` HRM to match the
teacher's distribution over legal actions (plus the ACT Q losses, "correct" = agreement), evaluates held-out
agreement every epoch, checkpoints every 5 epochs and at the end, registers the model as a version and activates
it when its held-out agreement reaches the threshold. Runs alone or under `torchrun` (gradient all-reduce, rank 0
writes). Metrics go to the console, to `metrics.jsonl` in the run folder, and to the store's training run.
"""

import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Literal

import torch
from rich.console import Console

from aegis.registry import RegistryError, activate
from aegis.state import this_process
from agent.student import StudentEncoder, batches_by_length, distillation_loss, evaluate_agreement
from data.datasets import DistillationData, build_distillation_data
from data.store import DEFAULT_DB, DEFAULT_MODELS, ExperienceStore, StoreError, absolute_db
from hrm import CheckpointError, Hrm, HrmConfig, TrainConfig, Trainer, fit, pick_device
from hrm.checkpoint import load_checkpoint, model_config_from
from hrm.cli import Range, check_ranges, parse_args
from hrm.device import resolve_precision
from hrm.distributed import init_distributed, shutdown_distributed
from hrm.runlog import MetricsLog

console = Console(stderr=True)


class UsageError(Exception):
    """A problem the user can fix (empty store, bad flag combination); the message says how."""


@dataclass
class DistillArgs:
    """Distil the agent's HRM student from the teacher's decisions in the experience store.

    The defaults are the recipe measured best on this project's 2-core CPU (bench/competence.py, oracle:0.5 start,
    40,000 decisions: 100 % held-out agreement, FrozenLake 0.764 / Taxi 8.04 greedy = the teacher's): distinct
    decisions, at most 2 ACT segments, batch 32, lr 3e-4, 50 epochs. The previous defaults (every decision, 8
    segments, batch 64, lr 1e-4, 20 epochs) sat at the per-task majority answer for most of a 30-minute budget.
    """

    db: str = DEFAULT_DB
    """Experience store: a SQLite file path or any SQLAlchemy URL."""
    epochs: Annotated[int, Range(1)] = 50
    """Passes over the training split (an epoch is its rows / batch-size steps; see --distinct)."""
    batch_size: Annotated[int, Range(1)] = 32
    """Examples per step, over all ranks."""
    lr: Annotated[float, Range(0, open_low=True)] = 3e-4
    """Peak learning rate (after warmup)."""
    warmup_steps: Annotated[int, Range(0)] = 20
    """Linear warmup steps."""
    optimizer: Literal["adamw", "adam-atan2"] = "adamw"
    """Optimizer of the network (the task embedding always uses sign-SGD)."""
    seed: int = 0
    """Seeds the split, the initialisation and the batch order."""
    device: str | None = None
    """cpu, cuda, cuda:N or mps (default: the best available)."""
    mixed_precision: Literal["auto", "none", "bf16", "fp16"] = "auto"
    """Autocast dtype; auto = bf16 where the hardware runs it natively (CUDA, a CPU with AMX or AVX512-BF16), fp32
    elsewhere."""
    grad_clip: Annotated[float, Range(0)] = 1.0
    """Gradient-norm clip (0 disables)."""
    threshold: Annotated[float, Range(0, 1)] = 0.70
    """Held-out agreement with the teacher at which the model is activated."""
    patience: Annotated[int, Range(0)] = 0
    """Stop early at an evaluation that reaches --threshold when the best held-out agreement has not improved for
    this many epochs; 0 (the default) stops at the first evaluation that reaches it, so the HRM is swapped in as
    soon as it agrees enough (RL improves it from there). --epochs stays the bound."""
    give_up: Annotated[int, Range(0)] = 0
    """Stop a run still below --threshold when neither its held-out agreement nor its held-out loss has reached a new
    best for this many epochs (the agent then collects more teacher decisions and distils again on them, from this run's
    weights); 0 (the default) trains all --epochs. Off here because agreement often sits on a plateau before it climbs:
    with 10 the default envs' first runs gave up at 38–40 % (FrozenLake + Taxi, oracle:0.5), where an uninterrupted run
    passes 70 %. The agent turns it on for TextWorld (start_training.py --distill-give-up), whose unseen games need more
    decisions."""
    activate: bool = True
    """Activate the model when it reaches the threshold (--no-activate only registers it)."""
    min_examples: Annotated[int, Range(1)] = 100
    """Fewer usable teacher decisions than this is an error."""
    held_out_fraction: Annotated[float, Range(0, 1, open_low=True)] = 0.2
    """Fraction of episodes held out for evaluation."""
    continue_loss: bool = True
    """Train Q-continue on its bootstrapped target (one more segment per step); --no-continue-loss drops it (TRM)
    and with it the extra segment."""
    failure_weight: Annotated[float, Range(0)] = 1.0
    """Weight of decisions from episodes that failed (outcome weighting; 1 weighs all alike)."""
    distinct: bool = True
    """Train on each distinct decision (same observation, legal actions and teacher distribution) once per epoch,
    so a state the teacher visited once weighs as much as one it visited a thousand times and an epoch is
    distinct decisions / batch-size steps: for large stores of a cheap teacher that revisits the same states."""
    preset: Literal["agent-29m", "agent-29m-long"] = "agent-29m"
    """The HRM architecture."""
    halt_max_steps: Annotated[int | None, Range(1)] = 2
    """The student's ACT bound (none: the preset's 8). The distilled student halts after one segment; with 8 a row
    holds its batch slot for up to 8 steps before new examples get in."""
    hidden_size: Annotated[int | None, Range(1)] = None
    """Override the preset's width (smaller students for quick experiments)."""
    copy_head: bool | None = None
    """Override the preset's answer head: --copy-head also copies tokens from the input (a pointer-generator; the
    agent-29m-long preset's), --no-copy-head generates them only (agent-29m's)."""
    out: str = DEFAULT_MODELS
    """Folder for run folders (checkpoints and metrics.jsonl)."""
    resume: bool = False
    """Continue the newest unfinished distillation run from its last checkpoint, on the decisions it started with."""
    init_from: str | None = None
    """Start from this student checkpoint's weights (an earlier run's last.pt, same architecture) instead of a fresh
    initialisation, with a fresh optimizer and schedule, on every decision stored now: the agent's next distillation
    after one that missed the threshold goes on from where that one stood, on more data."""
    checkpoint_minutes: Annotated[float, Range(0, open_low=True)] = 2.0
    """Minutes of training between checkpoints (also one every 5 epochs and at the end): a kill loses no more."""
    log_every: Annotated[int, Range(1)] = 10
    """Steps between metric lines."""
    tensorboard: str | None = None
    """Also write the metrics (metrics.jsonl's) as TensorBoard scalars to this folder."""
    dry_run: bool = False
    """Build the model, run one forward/backward on random tokens, print the parameter count and the loss."""

    def __post_init__(self):
        check_ranges(self)  # a config built in code gets the same one-line refusal as a flag
        # Paths are resolved once, against the folder the command ran in: a child process and the stored
        # checkpoint paths then mean the same files wherever they are read from.
        self.db = absolute_db(self.db)
        self.out = str(Path(self.out).resolve())
        self.init_from = str(Path(self.init_from).resolve()) if self.init_from else None


def initial_student(args: DistillArgs, config: HrmConfig) -> Hrm:
    """Returns the student a new run starts from: fresh, or --init-from's weights when its architecture matches."""
    model = Hrm(config)
    if args.init_from is None:
        return model
    state = load_checkpoint(args.init_from)
    theirs, ours = model_config_from(state, args.init_from).to_dict(), config.to_dict()
    differ = ", ".join(f"{k} {theirs[k]} there, {ours[k]} here" for k in ours if theirs[k] != ours[k])
    if differ:
        raise UsageError(f"--init-from {args.init_from} holds a student of another architecture than this run's "
                         f"{args.preset} ({differ}): drop --init-from or match them")
    model.load_state_dict(state["model"])
    return model


def model_config(args: DistillArgs) -> HrmConfig:
    """Returns the student's architecture: the preset with the requested overrides."""
    overrides = {k: v for k, v in (("halt_max_steps", args.halt_max_steps), ("hidden_size", args.hidden_size),
                                   ("copy_head", args.copy_head)) if v is not None}
    if "hidden_size" in overrides:  # keep 32-wide heads and a one-position task prefix at any width
        overrides.update(task_emb_dim=args.hidden_size, num_heads=max(1, args.hidden_size // 32))
    return HrmConfig.preset(args.preset, **overrides)


def recipe(args: DistillArgs, total_steps: int, precision: str) -> TrainConfig:
    """Returns the training settings of a distillation run of `total_steps` steps in `precision` ("none", "bf16")."""
    return TrainConfig(total_steps=total_steps, lr=args.lr, warmup_steps=min(args.warmup_steps, total_steps // 5),
                       lr_min_ratio=0.1, weight_decay=0.1, optimizer=args.optimizer, grad_clip=args.grad_clip,
                       mixed_precision=precision, continue_loss=args.continue_loss, seed=args.seed)


def dry_run(args: DistillArgs) -> dict:
    """Runs one training step of the preset on random data; returns its parameter count and loss."""
    torch.manual_seed(args.seed)
    config = model_config(args)
    model = Hrm(config)
    precision = "none" if args.mixed_precision == "auto" else args.mixed_precision
    trainer = Trainer(model, TrainConfig(total_steps=1, warmup_steps=0, mixed_precision=precision, seed=args.seed),
                      args.device)
    generator = torch.Generator().manual_seed(args.seed)
    inputs = torch.randint(0, config.vocab_size, (args.batch_size, config.seq_len), generator=generator)
    batch = {"inputs": inputs, "labels": inputs[:, -config.output_len:].clone(),  # the answer slots
             "task_ids": torch.randint(0, config.num_tasks, (args.batch_size,), generator=generator)}
    metrics = trainer.train_step(batch)
    return {"parameters": model.num_parameters(), "loss": metrics["lm_loss"], "device": str(trainer.device)}


def make_batch_at(train: dict[str, torch.Tensor], global_batch: int, seed: int, rank: int, world: int):
    """Returns batch_at(step): this rank's shard of the step's global batch, from a seeded per-epoch shuffle.

    Each epoch's order is bucketed by length: the shuffled rows are sorted by length within windows of 8 batches and
    the batches shuffled again, so a batch holds rows of similar length (the HRM computes at its longest row's
    length: a Taxi observation is half a FrozenLake one) and still mixes states from all over the split.
    """
    n = len(train["inputs"])
    steps_per_epoch = max(1, n // global_batch)
    local = global_batch // world
    lengths = train.get("lengths")

    def epoch_order(epoch: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(n, generator=generator)
        if n < global_batch:  # a tiny store: sample with replacement to fill the batch
            return order.repeat(-(global_batch // -n))
        if lengths is None:
            return order
        window = 8 * global_batch
        order = torch.cat([w[torch.argsort(lengths[w], stable=True)] for w in order.split(window)])
        batches = order[:steps_per_epoch * global_batch].view(steps_per_epoch, global_batch)
        return batches[torch.randperm(steps_per_epoch, generator=generator)].flatten()

    def batch_at(step: int) -> dict[str, torch.Tensor]:
        epoch, index = divmod(step, steps_per_epoch)
        rows = epoch_order(epoch)[index * global_batch:(index + 1) * global_batch][rank * local:(rank + 1) * local]
        return {k: v[rows] for k, v in train.items()}

    return batch_at, steps_per_epoch


def _resumable_run(store: ExperienceStore) -> tuple[int, Path, int | None] | None:
    """Returns (run id, checkpoint, the newest decision id it trains on) of the newest unfinished distillation run
    that left a checkpoint."""
    for run in store.training_runs(kind="imitation"):
        checkpoint = Path(run.config.get("run_dir", "")) / "last.pt"
        if run.status != "succeeded" and checkpoint.is_file():
            return run.id, checkpoint, run.config.get("data_up_to")
    return None


def distill(args: DistillArgs) -> dict:
    """Trains a student, then registers it and (at the threshold) activates it; returns its final metrics, its
    version id and whether it was activated ({} on ranks other than the first)."""
    trained = train_student(args)
    if trained is None:
        return {}
    run_id, checkpoint, metrics, store = trained
    version, activated = register_student(store, run_id, checkpoint, metrics, args.threshold, args.activate)
    return {"version": version, "activated": activated, **metrics}


def train_student(args: DistillArgs) -> tuple[int, Path, dict, ExperienceStore] | None:
    """Trains a student on the store's teacher decisions, recording the run and its per-epoch metrics; returns
    (run id, checkpoint, final held-out metrics, the store) on the first rank, None on the others."""
    device_type = torch.device(args.device).type if args.device else ("cuda" if torch.cuda.is_available() else "cpu")
    info = init_distributed(device_type)
    if args.batch_size % info.world_size:
        raise UsageError(f"--batch-size {args.batch_size} must be divisible by the {info.world_size} ranks")
    store = ExperienceStore(args.db)
    config = model_config(args)
    resumable = _resumable_run(store) if args.resume else None
    # A run trains on the decisions stored when it started, also after a restart (the store keeps growing).
    up_to = resumable[2] if resumable is not None else store.last_decision_id()
    data: DistillationData = build_distillation_data(store, StudentEncoder.for_config(config),
                                                     args.held_out_fraction, args.seed, up_to=up_to,
                                                     failure_weight=args.failure_weight, distinct=args.distinct)
    usable = len(data.train) + len(data.held_out)
    if usable < args.min_examples or not len(data.held_out):
        raise UsageError(f"the store {args.db} holds {usable} usable teacher decisions; distillation needs at least "
                         f"{args.min_examples} from two or more episodes: let `python start_training.py` collect "
                         "more, or lower --min-examples")

    torch.manual_seed(args.seed)
    batch_at, steps_per_epoch = make_batch_at(data.train.tensors, args.batch_size, args.seed, info.rank,
                                              info.world_size)
    if resumable is not None:
        run_id, checkpoint, _ = resumable
        trainer = Trainer.resume(checkpoint, args.device, loss_fn=distillation_loss)
        run_dir = checkpoint.parent
        store.resume_training_run(run_id, this_process())
        console.print(f"resuming distillation run {run_id} at step {trainer.step} from {checkpoint}")
    else:
        if args.resume:
            console.print("no unfinished distillation run to resume: starting a new one")
        device = pick_device(args.device)
        train_config = recipe(args, args.epochs * steps_per_epoch, resolve_precision(args.mixed_precision, device))
        trainer = Trainer(initial_student(args, config), train_config, device, loss_fn=distillation_loss)
        run_dir = Path(args.out) / f"distill-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        run_id = None
        if info.is_main:
            run_id = store.start_training_run("imitation", {
                **asdict(args), **this_process(), "run_dir": str(run_dir), "data_up_to": up_to,
                "train_decisions": len(data.train),
                "train_rows": len(data.train.states), "held_out_decisions": len(data.held_out),
                "model": config.to_dict()})

    held_out = batches_by_length(data.held_out.tensors, 256)
    precision = trainer.config.mixed_precision
    started = time.perf_counter()
    reached: dict[str, float] = {}

    def on_eval(metrics: dict) -> None:
        epoch = trainer.step / steps_per_epoch
        if metrics["eval_agreement"] >= args.threshold and "seconds_to_threshold" not in reached:
            reached.update(seconds_to_threshold=time.perf_counter() - started, epoch_to_threshold=epoch)
        store.add_run_metrics(run_id, {"epoch": round(epoch, 3), **metrics})

    progress = Progress(args.threshold, args.patience, args.give_up)

    try:
        fit(trainer, batch_at, eval_batches=lambda: held_out, eval_every=steps_per_epoch, until=progress.stop,
            checkpoint_path=run_dir / "last.pt", checkpoint_every=5 * steps_per_epoch,
            checkpoint_seconds=args.checkpoint_minutes * 60,
            log=MetricsLog(run_dir / "metrics.jsonl", args.tensorboard) if info.is_main else None,
            log_every=args.log_every,
            console=console, on_eval=on_eval,
            evaluator=lambda model, batches: evaluate_agreement(model, batches, adaptive=True,
                                                                mixed_precision=precision))
    except BaseException as e:
        if info.is_main:
            store.finish_training_run(run_id, "failed", error=f"{type(e).__name__}: {e}")
        raise
    shutdown_distributed()  # every rank leaves the job together: one that exits inside it can abort its peer
    if not info.is_main:
        return None
    final = evaluate_agreement(trainer.model, held_out, adaptive=True, mixed_precision=precision)
    unseen = data.unseen_mask()
    unseen_rows = {k: v[unseen] for k, v in data.held_out.tensors.items()}
    metrics = {**final, **reached, "train_decisions": len(data.train), "held_out_decisions": len(data.held_out),
               "train_rows": len(data.train.states), "unseen_decisions": int(unseen_rows["counts"].sum()),
               "epochs": trainer.step / steps_per_epoch,
               "max_steps_agreement": evaluate_agreement(trainer.model, held_out)["agreement"]}
    if unseen.any():
        metrics["unseen_agreement"] = evaluate_agreement(trainer.model, batches_by_length(unseen_rows, 256),
                                                         adaptive=True)["agreement"]
    return run_id, run_dir / "last.pt", metrics, store


@dataclass
class Progress:
    """When distillation stops early, judged at each epoch's evaluation. At or above `threshold`: after `patience`
    epochs without a new best held-out agreement. Below it: after `give_up` epochs (0: never) in which neither the
    agreement nor the held-out loss reached a new best: a student whose loss still falls is still learning, though
    its argmax may not have moved yet (a TextWorld run gave up at 37 % while its held-out loss fell 14.3 → 6.4)."""

    threshold: float
    patience: int
    give_up: int
    best_agreement: float = -1.0
    best_loss: float = float("inf")
    epochs_without_agreement: int = 0
    epochs_without_progress: int = 0

    def stop(self, metrics: dict) -> bool:
        """Takes one step's metrics; True when training should stop."""
        if "eval_agreement" not in metrics:
            return False
        agreement, loss = metrics["eval_agreement"], metrics.get("eval_loss", float("inf"))
        better_agreement, better_loss = agreement > self.best_agreement, loss < self.best_loss
        self.best_agreement, self.best_loss = max(agreement, self.best_agreement), min(loss, self.best_loss)
        self.epochs_without_agreement = 0 if better_agreement else self.epochs_without_agreement + 1
        self.epochs_without_progress = 0 if better_agreement or better_loss else self.epochs_without_progress + 1
        if agreement >= self.threshold:
            return self.epochs_without_agreement >= self.patience
        return 0 < self.give_up <= self.epochs_without_progress


def register_student(store: ExperienceStore, run_id: int, checkpoint: Path, metrics: dict, threshold: float,
                     activate_at_threshold: bool = True) -> tuple[int, bool]:
    """Registers a trained student as a model version, finishes its run and activates it when its held-out
    agreement reaches `threshold`; returns (version id, activated)."""
    version = store.add_model_version("imitation", checkpoint, metrics)
    store.finish_training_run(run_id, "succeeded", model_version_id=version)
    store.log_event("train", f"distillation run {run_id} → version {version}: held-out agreement "
                    f"{metrics['agreement']:.1%}", version=version, run=run_id)
    if metrics["agreement"] < threshold or not activate_at_threshold:
        return version, False
    activate(store, version)
    store.log_event("promote", f"version {version} active (agreement {metrics['agreement']:.1%} ≥ {threshold:.0%})",
                    version=version)
    return version, True


def report(result: dict, args: DistillArgs) -> str:
    """Returns the closing line(s) a user reads after training."""
    line = (f"version {result['version']}: held-out agreement {result['agreement']:.1%} "
            f"({result['held_out_decisions']} decisions; unseen states "
            f"{result.get('unseen_agreement', float('nan')):.1%}), mean ACT steps {result['steps']:.2f}")
    if result["activated"]:
        return line + f"\nactivated: agreement ≥ {args.threshold:.0%}"
    if not args.activate:
        return line + "\nleft as a candidate (--no-activate)"
    return line + (f"\nleft as a candidate: agreement {result['agreement']:.1%} is below the {args.threshold:.0%} "
                   "threshold; the teacher keeps acting (more decisions or epochs may help)")


def main(argv: list[str] | None = None) -> int:
    """Entry point of train_hrm.py; returns the process exit code."""
    args = parse_args(DistillArgs, argv, prog="train_hrm.py")
    if args.dry_run:
        result = dry_run(args)
        print(f"{args.preset}: {result['parameters']:,} parameters | loss {result['loss']:.4f} "
              f"(one forward/backward on random tokens, batch {args.batch_size}, {result['device']})")
        return 0
    try:
        result = distill(args)
    except (UsageError, StoreError, CheckpointError, RegistryError) as e:
        print(f"train_hrm.py: {e}", file=sys.stderr)
        return 2
    if result:
        print(report(result, args))
    return 0
