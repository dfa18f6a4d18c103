"""Decision speed of the HRM student vs the GPT-2 teacher on the same observations, side by side in one run.

    python bench/decide.py [--checkpoint runs/models/distill-…/last.pt] [--repeats 5]

The HRM is `agent-29m` (random weights unless --checkpoint is given) with adaptive halting; an untrained HRM never
halts early, so it runs all halt_max_steps segments (the worst case). The teacher is the GPT-2-124M architecture
with random weights (timing does not depend on the weights). Observations are real Taxi-v4 and FrozenLake-v1
states. Prints latency at batch 1, decisions/s at batch 16, the mean ACT steps used, and HRM/teacher ratios.
"""

import argparse
import sys
import time
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.envs import make_env  # noqa: E402
from agent.gpt2_teacher import Gpt2Teacher  # noqa: E402
from agent.hrm_policy import HrmPolicy  # noqa: E402
from hrm import Hrm, HrmConfig  # noqa: E402


def observations(n: int) -> list:
    """Returns n real observations, alternating Taxi-v4 and FrozenLake-v1 start states."""
    out = []
    for i in range(n):
        env = make_env("Taxi-v4" if i % 2 == 0 else "FrozenLake-v1")
        env.reset(seed=i)
        out.append(env.observe())
    return out


def seconds_per_call(policy, batch: list, repeats: int) -> float:
    policy.decide(batch, greedy=True)
    start = time.perf_counter()
    for _ in range(repeats):
        policy.decide(batch, greedy=True)
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="a distilled HRM checkpoint (default: random agent-29m)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or mps")
    args = parser.parse_args()
    torch.manual_seed(0)
    # memo_size=0: every call runs the model (the acting policy memoises repeated inputs; this measures the model)
    hrm = (HrmPolicy.load(args.checkpoint, device=args.device, memo_size=0) if args.checkpoint
           else HrmPolicy(Hrm(HrmConfig.preset("agent-29m")).to(args.device), memo_size=0))
    teacher = Gpt2Teacher(GPT2LMHeadModel(GPT2Config()), name="gpt2-124m-random", device=torch.device(args.device))
    batch = observations(16)
    print(f"threads {torch.get_num_threads()} | HRM {hrm.model.num_parameters() / 1e6:.1f}M "
          f"({'trained: ' + args.checkpoint if args.checkpoint else 'random weights'}, adaptive halting, at most "
          f"{hrm.model.config.halt_max_steps} segments) | teacher GPT-2 124M architecture")
    rows = []
    for name, policy in (("HRM", hrm), ("GPT-2", teacher)):
        one = seconds_per_call(policy, batch[:1], args.repeats)
        sixteen = seconds_per_call(policy, batch, args.repeats)
        steps = sum(hrm.last_steps) / len(hrm.last_steps) if policy is hrm else float("nan")
        rows.append((one, sixteen))
        print(f"{name:<6} batch 1: {one * 1e3:8.1f} ms | batch 16: {16 / sixteen:8.1f} decisions/s"
              + (f" | mean ACT steps {steps:.2f}" if policy is hrm else ""))
    (h1, h16), (t1, t16) = rows
    print(f"HRM vs GPT-2: {t1 / h1:.1f}× lower latency at batch 1, {t16 / h16:.1f}× the decisions/s at batch 16")


if __name__ == "__main__":
    main()
