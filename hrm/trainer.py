"""The HRM training core: one segment per step with the ACT carry kept across steps, as the seed trains.

`Trainer` owns the model, the optimizers (AdamATan2 or AdamW for the network, SignSGD for the task embedding),
the warmup + cosine schedule, mixed precision (bf16 autocast, or fp16 with a GradScaler), gradient clipping and
checkpoints that resume bit for bit. `fit` drives it over a batch source with rich progress and a JSONL log.
The batch source is a function of the step index, so a resumed run sees exactly the batches it would have seen.
"""

import functools
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from hrm.checkpoint import CheckpointError, load_checkpoint, model_config_from, save_checkpoint
from hrm.device import autocast, pick_device
from hrm.distributed import average_gradients, broadcast_module, gather_objects, rank, sum_metrics, world_size
from hrm.losses import IGNORE_INDEX, TOKEN_LOSSES, act_loss
from hrm.model import Carry, Hrm, HrmOutput
from hrm.optim import AdamATan2, SignSGD, warmup_cosine
from hrm.runlog import MetricsLog, format_metrics

Batch = dict[str, torch.Tensor]
LossFn = Callable[[Carry, HrmOutput], tuple[torch.Tensor, dict[str, torch.Tensor]]]


@dataclass(frozen=True)
class TrainConfig:
    """How an HRM is trained. Saved beside the model config in every checkpoint."""

    total_steps: int = 1000
    """Optimizer steps in the whole run (one ACT segment per step); the schedule ends here."""
    lr: float = 1e-4
    lr_min_ratio: float = 1.0
    """The cosine floor as a fraction of lr (1.0 keeps lr constant after warmup, as the seed's recipes do)."""
    warmup_steps: int = 100
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    optimizer: str = "adam-atan2"
    """"adam-atan2" or "adamw"."""
    task_emb_lr: float = 1e-2
    task_emb_weight_decay: float = 0.1
    loss_type: str = "stablemax"
    """Token loss: "stablemax" or "softmax" cross-entropy."""
    continue_loss: bool = True
    """Train Q-continue on the bootstrapped target (False drops it, as TRM does)."""
    grad_clip: float = 1.0
    """Clip the network's gradient norm to this value; 0 disables clipping."""
    mixed_precision: str = "none"
    """"none" (fp32), "bf16" (autocast) or "fp16" (autocast + GradScaler)."""
    seed: int = 0

    def __post_init__(self):
        if self.optimizer not in ("adam-atan2", "adamw"):
            raise ValueError(f"optimizer must be 'adam-atan2' or 'adamw', got {self.optimizer!r}")
        if self.loss_type not in TOKEN_LOSSES:
            raise ValueError(f"loss_type must be one of {', '.join(TOKEN_LOSSES)}, got {self.loss_type!r}")
        if self.mixed_precision not in ("none", "bf16", "fp16"):
            raise ValueError(f"mixed_precision must be none, bf16 or fp16, got {self.mixed_precision!r}")


def summarize(sums: dict[str, torch.Tensor], batch_size: int) -> dict[str, float]:
    """Turns summed metrics into means: losses per example, the rest per counted (halted) example."""
    count = float(sums["count"])
    out = {"count": int(count)}
    for key, value in sums.items():
        if key == "count":
            continue
        divisor = batch_size if key.endswith("loss") else count
        out[key] = float(value) / divisor if divisor else float("nan")
    return out


class Trainer:
    """Trains an `Hrm`; `train_step(batch)` runs one segment and one optimizer step and returns its metrics.

    Under torchrun each rank passes its own shard of the global batch; gradients and metrics are averaged over
    ranks, so every rank holds the same parameters and sees the global metrics.
    """

    def __init__(self, model: Hrm, config: TrainConfig, device: torch.device | str | None = None,
                 loss_fn: LossFn | None = None):
        self.device = device if isinstance(device, torch.device) else pick_device(device)
        # Token prediction by default; distillation passes agent.student.distillation_loss.
        self.loss_fn = loss_fn or functools.partial(act_loss, loss_type=config.loss_type,
                                                    continue_loss=config.continue_loss)
        self.model = model.to(self.device)
        broadcast_module(self.model)
        self.config = config
        network = [p for name, p in model.named_parameters() if not name.startswith("task_emb.")]
        if config.optimizer == "adam-atan2":
            main = AdamATan2(network, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
        else:
            main = torch.optim.AdamW(network, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
        self.network_params = network
        self.optimizers: list[torch.optim.Optimizer] = [main]
        self.base_lrs = [config.lr]
        if model.config.task_emb_dim > 0:
            self.optimizers.append(SignSGD([model.task_emb.weight], lr=config.task_emb_lr,
                                           weight_decay=config.task_emb_weight_decay))
            self.base_lrs.append(config.task_emb_lr)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=config.mixed_precision == "fp16")
        self.step = 0
        self.carry: Carry | None = None

    def lr_scale(self) -> float:
        """Returns the schedule's multiplier for the current step."""
        c = self.config
        return warmup_cosine(self.step, c.warmup_steps, c.total_steps, c.lr_min_ratio)

    def train_step(self, batch: Batch) -> dict[str, float]:
        """Runs one ACT segment on the carried rows (halted rows take `batch`'s example) and one update."""
        self.model.train()
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        if self.carry is None:
            self.carry = self.model.initial_carry(batch)
        scale = self.lr_scale()
        for opt, base_lr in zip(self.optimizers, self.base_lrs, strict=True):
            for group in opt.param_groups:
                group["lr"] = base_lr * scale

        with autocast(self.device, self.config.mixed_precision):
            self.carry, output = self.model(self.carry, batch, q_target=self.config.continue_loss)
            loss, sums = self.loss_fn(self.carry, output)
        batch_size = batch["inputs"].shape[0]
        self.scaler.scale(loss / batch_size).backward()
        # Average before unscaling, so every rank sees the same gradients and the same inf/nan verdict.
        average_gradients([p for opt in self.optimizers for g in opt.param_groups for p in g["params"]])
        for opt in self.optimizers:
            self.scaler.unscale_(opt)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.network_params, self.config.grad_clip or float("inf"))
        for opt in self.optimizers:
            if isinstance(opt, SignSGD):  # every task of the carried examples, on every rank, as the seed
                opt.use_rows(torch.cat([t.to(self.device) for t in gather_objects(self.carry.data["task_ids"].cpu())]))
            self.scaler.step(opt)
        self.scaler.update()
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)
        self.step += 1
        return {"step": self.step, **summarize(sum_metrics(sums), batch_size * world_size()),
                "lr": self.config.lr * scale,
                "grad_norm": float(grad_norm)}

    # --- checkpoints --------------------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """Returns everything a resumed run needs to continue bit for bit."""
        carry = None if self.carry is None else {
            "z_H": self.carry.z_H, "z_L": self.carry.z_L, "steps": self.carry.steps, "halted": self.carry.halted,
            "data": self.carry.data}
        return {
            "model": self.model.state_dict(),
            "optimizers": [opt.state_dict() for opt in self.optimizers],
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "carry": carry,
            "rng": gather_objects({"cpu": torch.get_rng_state(),
                                   "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}),
            "model_config": self.model.config.to_dict(),
            "train_config": asdict(self.config),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restores a state from `state_dict()` (the model config must match)."""
        self.model.load_state_dict(state["model"])
        for opt, opt_state in zip(self.optimizers, state["optimizers"], strict=True):
            opt.load_state_dict(opt_state)
        self.scaler.load_state_dict(state["scaler"])
        self.step = state["step"]
        c = state["carry"]
        self.carry = None if c is None else Carry(
            c["z_H"].to(self.device), c["z_L"].to(self.device), c["steps"].to(self.device),
            c["halted"].to(self.device), {k: v.to(self.device) for k, v in c["data"].items()})
        rng = state["rng"][rank() % len(state["rng"])]  # one RNG state per rank
        torch.set_rng_state(rng["cpu"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])

    def save(self, path: str | Path, **extra) -> Path:
        """Writes a checkpoint atomically (with `extra` entries such as a data cursor); returns its path.

        Every rank must call it (the RNG states are gathered); only rank 0 writes.
        """
        state = {**self.state_dict(), **extra}
        if rank() == 0:
            save_checkpoint(path, state)
        return Path(path)

    @classmethod
    def resume(cls, path: str | Path, device: torch.device | str | None = None,
               loss_fn: LossFn | None = None) -> "Trainer":
        """Returns a Trainer rebuilt from a checkpoint: same model config, train config and state."""
        state = load_checkpoint(path)
        trainer = cls(Hrm(model_config_from(state, path)), train_config_from(state, path), device, loss_fn)
        trainer.load_state_dict(state)
        return trainer


def train_config_from(state: dict, path: str | Path = "checkpoint") -> TrainConfig:
    """Returns the TrainConfig stored in a checkpoint state."""
    known = {f.name for f in fields(TrainConfig)}
    try:
        raw = state["train_config"]
        return TrainConfig(**{k: tuple(v) if k == "betas" else v for k, v in raw.items() if k in known})
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path} has no usable train config ({e})") from e


@torch.no_grad()
def evaluate(model: Hrm, batches: Iterable[Batch], loss_type: str = "stablemax", adaptive: bool = False,
             mixed_precision: str = "none") -> dict[str, float]:
    """Returns held-out metrics (accuracy, exact_accuracy, q_halt_accuracy, steps, lm_loss, q_halt_loss,
    q_continue_loss) over `batches`, per example; under torchrun, over every rank's batches.

    Each example runs until it halts (all halt_max_steps segments, or adaptively with `adaptive`). The Q losses are
    training's, at the segment where the example halted.
    """
    model.eval()
    device = next(model.parameters()).device
    totals = {"count": 0.0, "accuracy": 0.0, "exact_accuracy": 0.0, "q_halt_accuracy": 0.0, "steps": 0.0,
              "lm_loss": 0.0, "q_halt_loss": 0.0, "q_continue_loss": 0.0}
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    for batch in batches:
        batch = {k: v.to(device) for k, v in batch.items()}
        labels = batch["labels"]
        with autocast(device, mixed_precision):
            pred = model.predict(batch, adaptive=adaptive, bootstrap=True)
        mask = labels != IGNORE_INDEX
        counts = mask.sum(-1).clamp_min(1)
        correct = mask & (pred.logits.argmax(-1) == labels)
        seq_correct = correct.sum(-1) == mask.sum(-1)
        totals["count"] += labels.shape[0]
        totals["accuracy"] += float((correct.sum(-1) / counts).sum())
        totals["exact_accuracy"] += float(seq_correct.sum())
        totals["q_halt_accuracy"] += float(((pred.q_halt_logits >= 0) == seq_correct).sum())
        totals["steps"] += float(pred.steps.sum())
        totals["lm_loss"] += float((TOKEN_LOSSES[loss_type](pred.logits, labels).sum(-1) / counts).sum())
        totals["q_halt_loss"] += float(bce(pred.q_halt_logits, seq_correct.float(), reduction="sum"))
        totals["q_continue_loss"] += float(bce(pred.q_continue_logits, pred.target_q_continue, reduction="sum"))
    totals = {k: float(v) for k, v in sum_metrics({k: torch.tensor(v) for k, v in totals.items()}).items()}
    n = max(totals.pop("count"), 1.0)
    return {k: v / n for k, v in totals.items()}


def fit(trainer: Trainer, batch_at: Callable[[int], Batch], *,
        eval_batches: Callable[[], Iterable[Batch]] | None = None, eval_every: int = 0,
        checkpoint_path: str | Path | None = None, checkpoint_every: int = 0, checkpoint_seconds: float = 0.0,
        log: MetricsLog | None = None, log_every: int = 50, console: Console | None = None,
        until: Callable[[dict], bool] | None = None,
        evaluator: Callable[[Hrm, Iterable[Batch]], dict[str, float]] | None = None,
        on_eval: Callable[[dict], None] | None = None,
        checkpoint_extra: Callable[[], dict] | None = None) -> dict[str, float]:
    """Trains from `trainer.step` to `total_steps`; returns the last metrics (eval metrics prefixed "eval_").

    `batch_at(step)` gives the batch for a step. Every `eval_every` steps (and at the end) the model is evaluated on
    `eval_batches()` with `evaluator` (token metrics by default) and `on_eval(metrics)` is called; every
    `checkpoint_every` steps, every `checkpoint_seconds` of training (so a kill loses minutes at most) and at the end a
    checkpoint is written, with the entries `checkpoint_extra()` gives
    (a run config, a data cursor). `until(metrics)` may stop the run early (for example once eval exact accuracy
    reaches a target).
    """
    console = console or Console(stderr=True)
    evaluator = evaluator or functools.partial(evaluate, loss_type=trainer.config.loss_type,
                                               mixed_precision=trainer.config.mixed_precision)
    total = trainer.config.total_steps
    last: dict[str, float] = {}
    saved_at = time.monotonic()
    columns = (TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
               TextColumn("{task.fields[line]}"))
    with Progress(*columns, console=console, transient=True, disable=rank() != 0) as progress:
        task = progress.add_task("train", total=total, completed=trainer.step, line="")
        while trainer.step < total:
            metrics = trainer.train_step(batch_at(trainer.step))
            last = metrics
            done = trainer.step >= total
            if eval_batches is not None and ((eval_every and trainer.step % eval_every == 0) or done):
                evaluation = evaluator(trainer.model, eval_batches())
                last = {**metrics, **{f"eval_{k}": v for k, v in evaluation.items()}}
                if on_eval is not None and rank() == 0:
                    on_eval(last)
            if rank() == 0 and (trainer.step % log_every == 0 or done or len(last) > len(metrics)):
                console.print(format_metrics(last))
                if log is not None:
                    log.write(last)
            due = ((checkpoint_every and trainer.step % checkpoint_every == 0)
                   or (checkpoint_seconds and time.monotonic() - saved_at >= checkpoint_seconds))
            if checkpoint_path and (due or done):
                trainer.save(checkpoint_path, **(checkpoint_extra() if checkpoint_extra else {}))
                saved_at = time.monotonic()
            progress.update(task, completed=trainer.step, line=f"loss {metrics.get('lm_loss', float('nan')):.4f}")
            if until is not None and until(last):
                if checkpoint_path:
                    trainer.save(checkpoint_path, **(checkpoint_extra() if checkpoint_extra else {}))
                break
    return last
