"""HRM × LM on addition: the HRM encoder beside the same-parameter bypass (plain encoder, same decoder), at the
same steps and at the same training wall time, plus generation speed with and without the decoder's KV cache.

    OMP_NUM_THREADS=1 python bench/hrm_lm.py                   # the default budget (see --help), ≤ 20 min on a CPU
    OMP_NUM_THREADS=1 python bench/hrm_lm.py --steps 300 --heldout 500   # a quick look

Both models train on 1-5-digit additions (reversed answers, Abacus digit indices with random offsets) and are scored
on held-out 1-5-digit problems never trained on (exact match, by operand length) and on 6-8-digit problems (a
length never trained on). The HRM trains for --steps; the bypass trains until it has used the HRM's training wall
time, and is scored at --steps on the way. Evaluation time is not counted as training time.
"""

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hrm.lm.engine import Generator  # noqa: E402
from hrm.lm.train import TrainArgs, build_trainer, evaluate_task, make_task  # noqa: E402


def train_and_score(args: TrainArgs, steps: int, seconds: float | None) -> tuple[dict, dict | None, object]:
    """Trains for `steps` (or, with `seconds`, until that much training time, scoring at `steps` on the way).
    Returns (metrics at `steps`, metrics at the end or None, the trainer)."""
    task = make_task(args)
    trainer = build_trainer(args, task, torch.device("cpu"))
    at_steps, elapsed = None, 0.0
    while True:
        start = time.perf_counter()
        trainer.train_step(task.batch_at(trainer.step, args.batch_size))
        elapsed += time.perf_counter() - start
        if trainer.step == steps:
            at_steps = {"train_steps": trainer.step, "train_s": elapsed, **evaluate_task(trainer.model, task)}
            print(f"  {'bypass' if args.bypass_hrm else 'HRM'} at step {steps}: {elapsed:.0f} s, held-out exact "
                  f"{at_steps['exact_accuracy']:.4f}, ood exact {at_steps['ood_exact_accuracy']:.4f}", flush=True)
            if seconds is None:
                return at_steps, None, trainer
        if seconds is not None and elapsed >= seconds and trainer.step >= steps:
            end = {"train_steps": trainer.step, "train_s": elapsed, **evaluate_task(trainer.model, task)}
            return at_steps, end, trainer


def tokens_per_second(generator: Generator, prompts: list[str], new_tokens: int, kv_cache: bool,
                      repeats: int) -> float:
    """Returns generated tokens per second (prompt encoding included) writing `new_tokens` for every prompt."""
    generator.generate(prompts[:2], new_tokens, kv_cache=kv_cache, stop_at_eos=False)  # warm up
    start = time.perf_counter()
    for _ in range(repeats):
        generator.generate(prompts, new_tokens, kv_cache=kv_cache, stop_at_eos=False)
    return repeats * len(prompts) * new_tokens / (time.perf_counter() - start)


def row(name: str, values: list, fmt: str = "{:.4f}") -> str:
    cells = [("-" if v is None else fmt.format(v)) for v in values]
    return f"{name:<34}" + "".join(f"{c:>18}" for c in cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1000, help="training steps of the HRM (and the step the "
                        "bypass is also scored at)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--heldout", type=int, default=2000, help="held-out 1-5-digit problems")
    parser.add_argument("--ood", type=int, default=500, help="6-8-digit problems")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--encoder-positions", choices=("sequence", "abacus"), default="sequence",
                        help="the encoder's rotary positions (both models): token order or digit places")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--gen-batch", type=int, default=32)
    opts = parser.parse_args()
    torch.set_num_threads(opts.threads)
    args = TrainArgs(steps=opts.steps, batch_size=opts.batch_size, heldout_size=opts.heldout, ood_size=opts.ood,
                     seed=opts.seed, encoder_positions=opts.encoder_positions, device="cpu")  # rest: the defaults
    bench_start = time.perf_counter()
    print(f"bench/hrm_lm.py: seed {opts.seed}, {opts.steps} HRM steps of {opts.batch_size}, {opts.threads} thread(s), "
          f"held-out {opts.heldout} (1-5 digits), ood {opts.ood} (6-8 digits), encoder positions: "
          f"{opts.encoder_positions}", flush=True)
    hrm_metrics, _, hrm_trainer = train_and_score(args, opts.steps, None)
    bypass_args = replace(args, bypass_hrm=True)
    bypass_steps, bypass_wall, _ = train_and_score(bypass_args, opts.steps, hrm_metrics["train_s"])

    params = hrm_trainer.model.num_parameters()
    print(f"\nparameters: {params:,} in both (the bypass runs the same blocks once, as a plain encoder)")
    cols = [hrm_metrics, bypass_steps, bypass_wall]
    print(row("", ["HRM encoder", "bypass same steps", "bypass same time"], "{}"))
    print(row("training steps", [c["train_steps"] for c in cols], "{}"))
    print(row("training wall time (s)", [c["train_s"] for c in cols], "{:.0f}"))
    print(row("held-out exact match, 1-5 digits", [c["exact_accuracy"] for c in cols]))
    for n in range(1, 6):
        print(row(f"  {n} digits", [c.get(f"exact_d{n}") for c in cols]))
    print(row("held-out token accuracy", [c["accuracy"] for c in cols]))
    print(row("mean ACT segments (adaptive halting)", [c["steps"] for c in cols], "{:.2f}"))
    print(row("ood exact match, 6-8 digits", [c["ood_exact_accuracy"] for c in cols]))
    for n in range(6, 9):
        print(row(f"  {n} digits", [c.get(f"ood_exact_d{n}") for c in cols]))
    print(row("ood token accuracy", [c["ood_accuracy"] for c in cols]))

    task = make_task(args)
    generator = Generator(hrm_trainer.model.eval(), task)
    prompts = [f"What is {a} + {b}?" for a, _, b in task.heldout[:opts.gen_batch]]
    cached = tokens_per_second(generator, prompts, opts.new_tokens, True, 5)
    uncached = tokens_per_second(generator, prompts, opts.new_tokens, False, 2)
    print(f"\ngeneration, HRM model, {len(prompts)} prompts × {opts.new_tokens} new tokens (HRM halting adaptively):")
    print(f"  KV cache {cached:.0f} tokens/s | no cache {uncached:.0f} tokens/s | ratio {cached / uncached:.2f}×")
    print(f"bench total {time.perf_counter() - bench_start:.0f} s")


if __name__ == "__main__":
    main()
