"""Distillation speed on this machine: seconds per training step and per held-out evaluation of the student the agent
would distil, in the product's precision and in fp32 side by side in one run.

    python bench/distill_step.py [--envs TextWorld-medium] [--decisions 600] [--steps 8] [--device cpu]

Fills a fresh temporary store with oracle decisions on --envs (8 envs in lockstep, seed 0), builds the training and
held-out rows exactly as `train_hrm.py` does, for the student `start_training.py` picks for these envs (agent-29m-long
without the Q-continue loss for TextWorld), then for each precision trains a fresh student (seed 0) with the product's
distillation recipe (`aegis.distill.recipe`: batch 32, AdamW, lr 3e-4) for --steps steps after one warm-up step, and
evaluates it once on the held-out rows with adaptive halting. Prints each precision's seconds per step, examples per
second, evaluation seconds and last training loss, and the auto/fp32 ratios. `--precision auto` is bf16 where the
hardware runs it natively (`hrm.device.native_bf16`); where it does not, both rows run fp32 and the ratio is ~1.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aegis.distill import DistillArgs, make_batch_at, model_config, recipe  # noqa: E402
from aegis.orchestrator import AgentConfig, env_names  # noqa: E402
from agent.oracle import OracleTeacher  # noqa: E402
from agent.runner import VectorRunner  # noqa: E402
from agent.student import StudentEncoder, batches_by_length, distillation_loss, evaluate_agreement  # noqa: E402
from data.datasets import build_distillation_data  # noqa: E402
from data.store import ExperienceStore  # noqa: E402
from hrm import Hrm, Trainer  # noqa: E402
from hrm.device import pick_device, resolve_precision  # noqa: E402


def timed_run(args: DistillArgs, train: dict, held_out: list, precision: str, steps: int, device) -> dict:
    """Trains a fresh seeded student `steps` steps in `precision` with `train_hrm.py`'s recipe and evaluates it once;
    returns its timings."""
    torch.manual_seed(args.seed)
    batch_at, _ = make_batch_at(train, args.batch_size, args.seed, 0, 1)
    trainer = Trainer(Hrm(model_config(args)), recipe(args, steps + 1, precision), device, loss_fn=distillation_loss)
    trainer.train_step(batch_at(0))  # allocations and kernel selection happen once, outside the timing
    started = time.perf_counter()
    for step in range(1, steps + 1):
        metrics = trainer.train_step(batch_at(step))
    step_s = (time.perf_counter() - started) / steps
    started = time.perf_counter()
    evaluate_agreement(trainer.model, held_out, adaptive=True, mixed_precision=precision)
    return {"step_s": step_s, "eval_s": time.perf_counter() - started, "loss": float(metrics["lm_loss"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default="TextWorld-medium", help="comma-separated envs the oracle plays")
    parser.add_argument("--decisions", type=int, default=600, help="oracle decisions collected (20 %% held out)")
    parser.add_argument("--steps", type=int, default=8, help="timed training steps per precision")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or mps")
    args = parser.parse_args()
    device = pick_device(args.device)
    agent = AgentConfig(envs=args.envs)  # the student and its Q-continue setting, as start_training.py picks them
    distill = DistillArgs(preset=agent.student_preset(), continue_loss=agent.continue_loss())
    config = model_config(distill)
    with tempfile.TemporaryDirectory() as folder:
        store = ExperienceStore(str(Path(folder) / "bench.db"))
        envs = env_names(args.envs)
        VectorRunner([envs[i % len(envs)] for i in range(8)], store, OracleTeacher(seed=0), seed=0).run(
            max_decisions=args.decisions)
        data = build_distillation_data(store, StudentEncoder.for_config(config), 0.2, 0, distinct=True)
    held_out = batches_by_length(data.held_out.tensors, 256)
    auto = resolve_precision("auto", device)
    print(f"threads {torch.get_num_threads()} | {distill.preset} on {len(data.train)} training and "
          f"{len(data.held_out)} held-out oracle decisions of {args.envs} | precision auto = {auto}")
    runs = {}
    for name, precision in ((f"auto ({auto})", auto), ("fp32", "none")):
        runs[name] = run = timed_run(distill, data.train.tensors, held_out, precision, args.steps, device)
        print(f"{name:<12} {run['step_s']:6.2f} s a step ({distill.batch_size / run['step_s']:5.1f} examples/s)"
              f" | held-out evaluation {run['eval_s']:6.2f} s | training loss {run['loss']:.4f}")
    fast, slow = runs.values()
    print(f"auto vs fp32: {slow['step_s'] / fast['step_s']:.2f}× the training steps/s, "
          f"{slow['eval_s'] / fast['eval_s']:.2f}× the evaluation speed")


if __name__ == "__main__":
    main()
