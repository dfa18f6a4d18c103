"""RL throughput, side by side in one run: memoised PPO rollouts vs the acting-only HRM, grouped vs ungrouped updates.

    python bench/rl.py [--checkpoint runs/models/distill-…/last.pt] [--decisions 16384] [--update-decisions 2048]

Same policy, same run. (1) Environment steps per second: the acting-only HRM (every decision runs the model, the
way a policy without memoisation acts) on 16 FrozenLake-v1 + 16 Taxi-v4 games in lockstep, vs an RL round's
rollouts (`RlPolicy` memoised: each distinct input is evaluated once; every decision is still sampled and recorded
in a store). (2) One PPO epoch on the same rollouts as grouped rows (one per distinct input and action) vs one row per
decision: decisions trained per second (the loss and gradient are the same; tests/agent/test_ppo.py checks it).
The product's RlConfig defaults (the update timed is PPO's epoch), `agent-29m` (a distilled checkpoint, or random
weights), `--device` (CPU).
"""

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.envs import make_env  # noqa: E402
from agent.hrm_policy import HrmPolicy  # noqa: E402
from agent.ppo import ppo_update  # noqa: E402
from agent.rl import RlConfig, RlPolicy, ValueHead, collect_rollouts, gae, group_rows  # noqa: E402
from data.store import ExperienceStore  # noqa: E402
from hrm import Hrm, HrmConfig, load_model  # noqa: E402

ENVS = ("FrozenLake-v1", "Taxi-v4")


def games(per_env: int) -> list:
    """Returns `per_env` games of each env, reset to fixed seeds."""
    out = [make_env(env) for env in ENVS for _ in range(per_env)]
    for i, env in enumerate(out):
        env.reset(seed=i)
    return out


def acting_only(model: Hrm, per_env: int, seconds: float) -> float:
    """Returns environment steps per second of the HRM deciding every step anew for `seconds`."""
    policy = HrmPolicy(model, memo_size=0)
    envs, steps = games(per_env), 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        decisions = policy.decide([env.observe() for env in envs])
        for i, (env, decision) in enumerate(zip(envs, decisions, strict=True)):
            _, _, terminated, truncated, _ = env.step(decision.action)
            if terminated or truncated:
                env.reset(seed=10_000 + steps + i)
        steps += len(envs)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a distilled HRM (default: agent-29m with random weights)")
    parser.add_argument("--decisions", type=int, default=RlConfig.rollout_decisions,
                        help="rollout decisions (default: a round's)")
    parser.add_argument("--update-decisions", type=int, default=2048,
                        help="rollout decisions the two update modes train on (the ungrouped one is slow)")
    parser.add_argument("--acting-seconds", type=float, default=60.0)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or mps")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = (load_model(args.checkpoint, args.device) if args.checkpoint
             else Hrm(HrmConfig.preset("agent-29m")).to(args.device).eval())
    config = RlConfig()
    head = ValueHead(model.config.hidden_size).to(args.device)
    print(f"threads {torch.get_num_threads()} | agent-29m ({args.checkpoint or 'random weights'}) | "
          f"{config.games_per_env} games per env of {', '.join(ENVS)}")

    acting = acting_only(model, config.games_per_env, args.acting_seconds)
    print(f"acting-only HRM: {acting:,.1f} env steps/s (every decision runs the model)")
    policy = RlPolicy(model, head, seed=0)
    start = time.perf_counter()
    steps = collect_rollouts(policy, games(config.games_per_env), ExperienceStore("sqlite://"), args.decisions, 0)
    rollout = len(steps) / (time.perf_counter() - start)
    print(f"memoised rollouts: {rollout:,.1f} env steps/s ({len(steps):,} decisions recorded, "
          f"{policy.evaluations:,} distinct inputs evaluated)")
    print(f"rollout / acting-only: {rollout / acting:.1f}×  (aim ≥ 30×)")

    part = steps[:args.update_decisions]
    advantages, returns = gae(part, config.gamma, config.gae_lambda)
    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    one_epoch = replace(config, ppo_epochs=1, value_epochs=0, ppo_target_kl=float("inf"))
    rates = {}
    for grouped in (True, False):
        rows = group_rows(part, advantages, returns, policy.encoder, grouped=grouped)
        start = time.perf_counter()
        ppo_update(model, head, model, rows, one_epoch)
        seconds = time.perf_counter() - start
        rates[grouped] = len(part) / seconds
        print(f"PPO epoch, {'grouped' if grouped else 'ungrouped'}: {len(rows):,} rows for {len(part):,} decisions in "
              f"{seconds:.1f}s = {rates[grouped]:,.1f} decisions/s ({len(rows) / seconds:.1f} rows/s)")
    print(f"grouped / ungrouped: {rates[True] / rates[False]:.1f}× the decisions trained per second")


if __name__ == "__main__":
    main()
