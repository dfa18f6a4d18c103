"""Training throughput of the HRM presets, and how much of this machine's matmul peak a training step achieves.

    python bench/hrm_train.py [--batch-size 16] [--steps 3] [--device cpu]

For `sudoku-27m` and `agent-29m` at fp32 and bf16: samples/s of a full training step (one ACT segment, the
bootstrap segment for the Q-continue target, backward through the one-step-gradient path, optimizer step), the
step's FLOPs counted from the layer-passes it really runs, and the achieved GFLOP/s beside a plain matmul's
GFLOP/s measured in the same run, as a ratio.
"""

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hrm import Hrm, HrmConfig, TrainConfig, Trainer, pick_device  # noqa: E402
from hrm.layers import swiglu_width  # noqa: E402


def step_flops(config: HrmConfig, batch_size: int) -> dict[str, float]:
    """Returns the matmul FLOPs of one training step, split into forward and backward."""
    D, T = config.hidden_size, config.seq_len + config.task_emb_len
    tokens = batch_size * T
    # Per block per token: qkv + o projections (4·D²), SwiGLU (3·D·W); ×2 for multiply-add. Attention: QKᵀ and AV.
    block = 2 * tokens * (4 * D * D + 3 * D * swiglu_width(D, config.expansion)) + 4 * batch_size * T * T * D
    l_passes, h_passes = config.H_cycles * config.L_cycles, config.H_cycles
    segment = block * (l_passes * config.L_layers + h_passes * config.H_layers)
    head = 2 * batch_size * config.output_len * D * config.vocab_size
    q_head = 2 * batch_size * D * 2
    # Training runs the segment with the answer head, then a second segment (no grad) for the Q-continue target.
    forward = (segment + head + q_head) + (segment + q_head if config.halt_max_steps > 1 else 0)
    # Backward (≈2× forward: grads of inputs and weights) only through the last L and last H update and the heads.
    backward = 2 * (block * (config.L_layers + config.H_layers) + head + q_head)
    return {"forward": forward, "backward": backward, "total": forward + backward}


def matmul_gflops(device: torch.device, dtype: torch.dtype, n: int = 2048, repeats: int = 10) -> float:
    """Returns the GFLOP/s of an n×n by n×n matmul in `dtype` on `device`."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_training(preset: str, precision: str, batch_size: int, steps: int, device: torch.device) -> float:
    """Returns seconds per training step (after one warm-up step) of `preset` at `precision`."""
    torch.manual_seed(0)
    config = HrmConfig.preset(preset)
    trainer = Trainer(Hrm(config), TrainConfig(total_steps=steps + 1, warmup_steps=0, loss_type="softmax",
                                               mixed_precision=precision), device)
    inputs = torch.randint(0, config.vocab_size, (batch_size, config.seq_len))
    batch = {"inputs": inputs, "labels": inputs[:, -config.output_len:],
             "task_ids": torch.zeros(batch_size, dtype=torch.long)}
    trainer.train_step(batch)
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(batch)
    sync(device)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per configuration")
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    device = pick_device(args.device)
    print(f"device {device} | torch {torch.__version__} | threads {torch.get_num_threads()} | batch {args.batch_size}")
    peaks = {"fp32": matmul_gflops(device, torch.float32), "bf16": matmul_gflops(device, torch.bfloat16)}
    print(f"plain 2048² matmul: fp32 {peaks['fp32']:.1f} GFLOP/s | bf16 {peaks['bf16']:.1f} GFLOP/s")
    print(f"{'preset':<11} {'precision':<9} {'s/step':>7} {'samples/s':>9} {'GFLOP/step':>10} {'GFLOP/s':>8} "
          f"{'of fp32 matmul':>14} {'of same-dtype matmul':>20}")
    for preset in ("sudoku-27m", "agent-29m"):
        flops = step_flops(HrmConfig.preset(preset), args.batch_size)
        for precision, peak_key in (("none", "fp32"), ("bf16", "bf16")):
            seconds = time_training(preset, precision, args.batch_size, args.steps, device)
            achieved = flops["total"] / seconds / 1e9
            print(f"{preset:<11} {peak_key:<9} {seconds:7.2f} {args.batch_size / seconds:9.2f} "
                  f"{flops['total'] / 1e9:10.1f} {achieved:8.1f} {achieved / peaks['fp32']:14.0%} "
                  f"{achieved / peaks[peak_key]:20.0%}")


if __name__ == "__main__":
    main()
