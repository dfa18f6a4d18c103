"""Decision speed of the HRM student vs the GPT-2 teacher on the same observations, side by side in one run.

    python bench/decide.py [--checkpoint runs/models/distill-…/last.pt] [--repeats 5] [--envs BabyAI-GoToLocal]

The HRM is `agent-29m` (random weights unless --checkpoint is given) with adaptive halting; an untrained HRM never
halts early, so it runs all halt_max_steps segments (the worst case). The teacher is the GPT-2-124M architecture
with random weights (timing does not depend on the weights). Observations are real start states of --envs (by
default Taxi-v4 and FrozenLake-v1, alternating). The HRM runs in the product's precision (`--precision auto`: bf16
where the hardware runs it natively) and in fp32 beside it. Prints latency at batch 1, decisions/s at batch 16, the
mean ACT steps used, and the HRM/teacher and auto/fp32 ratios.
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
from hrm import Hrm, HrmConfig, load_model  # noqa: E402


def observations(n: int, envs: list[str]) -> list:
    """Returns n real observations: start states of `envs` in turn."""
    out = []
    for i in range(n):
        env = make_env(envs[i % len(envs)])
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
    parser.add_argument("--envs", default="Taxi-v4,FrozenLake-v1", help="comma-separated envs whose states are asked")
    args = parser.parse_args()
    torch.manual_seed(0)
    # memo_size=0: every call runs the model (the acting policy memoises repeated inputs; this measures the model)
    model = (load_model(args.checkpoint, args.device) if args.checkpoint
             else Hrm(HrmConfig.preset("agent-29m")).to(args.device))
    hrm = HrmPolicy(model, memo_size=0)  # the product's default precision ("auto")
    fp32 = HrmPolicy(model, memo_size=0, precision="none")
    teacher = Gpt2Teacher(GPT2LMHeadModel(GPT2Config()), name="gpt2-124m-random", device=torch.device(args.device))
    batch = observations(16, args.envs.split(","))
    print(f"threads {torch.get_num_threads()} | HRM {model.num_parameters() / 1e6:.1f}M "
          f"({'trained: ' + args.checkpoint if args.checkpoint else 'random weights'}, adaptive halting, at most "
          f"{model.config.halt_max_steps} segments, precision auto = {hrm.precision}) | teacher GPT-2 124M "
          f"architecture | states of {args.envs}")
    rows = []
    for name, policy in ((f"HRM {hrm.precision}", hrm), ("HRM fp32", fp32), ("GPT-2", teacher)):
        one = seconds_per_call(policy, batch[:1], args.repeats)
        sixteen = seconds_per_call(policy, batch, args.repeats)
        steps = sum(policy.last_steps) / len(policy.last_steps) if policy is not teacher else float("nan")
        rows.append((one, sixteen))
        print(f"{name:<9} batch 1: {one * 1e3:8.1f} ms | batch 16: {16 / sixteen:8.1f} decisions/s"
              + (f" | mean ACT steps {steps:.2f}" if policy is not teacher else ""))
    (h1, h16), (f1, f16), (t1, t16) = rows
    print(f"HRM vs GPT-2: {t1 / h1:.1f}× lower latency at batch 1, {t16 / h16:.1f}× the decisions/s at batch 16")
    print(f"HRM {hrm.precision} vs fp32: {f1 / h1:.2f}× lower latency at batch 1, {f16 / h16:.2f}× the decisions/s "
          f"at batch 16")


if __name__ == "__main__":
    main()
