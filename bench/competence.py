"""How good the agent gets: the whole loop from an empty store, then every policy on the same evaluation episodes.

    python bench/competence.py [--minutes 60] [--eval-episodes 500] [--starts tiny,oracle:0.5]

For each start (teacher), a fresh store and the autonomous loop exactly as `python start_training.py --teacher START`
runs it (the product's defaults: AgentConfig, DistillArgs, RlConfig) on FrozenLake-v1 (4×4) and Taxi-v4 for
`--minutes`: collect 1,100 decisions with the teacher → distil (train_hrm.py, agent-29m) → switch → improve by RL
rounds. Then, per env, mean return over the same `--eval-episodes` fixed seeds (never seen in training or in
champion/challenger) for: uniform random, the teacher, the first distilled HRM, the HRM after RL (the active version
at the end) — both greedy with adaptive halting, and both sampled as the agent acts — and the exact optimum (value
iteration), with each one's ratio to the optimum. On FrozenLake the mean return is the success rate. Aims:
FrozenLake ≥ 0.70, Taxi-v4 ≥ 7.0.
`--envs` picks others (any registered names, e.g. BabyAI-GoToLocal): an env without a known optimum (BabyAI) is
scored by its success rate (the share of episodes that paid anything), aim 0.80.
The teacher is scored greedily (its argmax, what distillation copies) on the same seeds and, as it acted, by the
mean return of the episodes it collected. `--eval-only` scores the stores a previous run left in `--out`.

Starts: `tiny` is a random GPT-2 (a degenerate teacher: it prefers one action everywhere, so RL must do the
climbing); `oracle:0.5` is the optimal policy with half its actions uniformly random.
"""

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aegis.orchestrator import AgentConfig, Orchestrator  # noqa: E402
from aegis.plots import save_learning_curves  # noqa: E402
from aegis.state import read_rl  # noqa: E402
from aegis.teachers import make_teacher  # noqa: E402
from agent.envs import make_env  # noqa: E402
from agent.envs.seeds import EVALUATION_SEEDS  # noqa: E402
from agent.evaluation import episode_returns  # noqa: E402
from agent.hrm_policy import HrmPolicy  # noqa: E402
from agent.policy import RandomPolicy  # noqa: E402
from data.datasets import is_teacher_decision  # noqa: E402
from data.store import ExperienceStore  # noqa: E402

ENVS = ("FrozenLake-v1", "Taxi-v4")
AIMS = {"FrozenLake-v1": 0.70, "Taxi-v4": 7.0}
SUCCESS_AIM = 0.80  # envs scored by success rate (no known optimum)


def score(env: str, returns: np.ndarray) -> float:
    """Returns the env's figure of merit: the mean return, or the success rate where no optimum is known."""
    return float(np.mean(returns)) if make_env(env).optimal_return() is not None else float(np.mean(returns > 0))
EVAL_SEED = EVALUATION_SEEDS.start  # never drawn for training episodes; TextWorld plays its held-out games there
console = Console(width=140)


def run_loop(start: str, out: Path, args: argparse.Namespace) -> ExperienceStore:
    """Runs the autonomous loop from an empty store for args.minutes; returns the store it filled."""
    config = AgentConfig(db=str(out / "aegis.db"), envs=",".join(args.envs), teacher=start, duration=args.minutes * 60,
                         out=str(out / "models"), seed=args.seed, device=args.device)
    orch = Orchestrator(config)
    last = {"phase": None, "at": 0.0}

    def report(o: Orchestrator) -> None:
        if o.phase != last["phase"] or time.time() - last["at"] > 60:
            last.update(phase=o.phase, at=time.time())
            acting = (o.runner.policy.name, o.teacher.name)
            returns = " | ".join(f"{env}/{policy} {np.mean(r):.2f}" for (env, policy), r in sorted(o.recent.items())
                                 if policy in acting)
            rl = read_rl(o.store)
            console.print(f"  [{start}] {time.time() - o.started:5.0f}s phase {o.phase} | decisions {o.decisions} | "
                          f"acting {o.runner.policy.name} | RL rounds {rl.rounds} ({rl.accepted} accepted) | "
                          f"{returns}")

    orch.run(on_step=report)
    return orch.store


def loop_summary(store: ExperienceStore, envs: list[str]) -> dict:
    """Returns what the loop did: versions, first distilled and final active, RL rounds accepted and rejected."""
    versions = store.model_versions()
    distilled = [v for v in versions if v.kind == "imitation"]
    first_active = next((v for v in sorted(distilled, key=lambda v: v.id) if v.activated_at is not None), None)
    rl = [v for v in versions if v.kind == "rl"]
    active = store.active_version()
    visited = {env: len({d.state for d in store.decisions(env=env) if is_teacher_decision(d)}) for env in envs}
    return {"decisions": store.count_decisions(), "distillations": len(distilled), "teacher_states": visited,
            "distilled": first_active, "active": active,
            "rl_accepted": sum(v.activated_at is not None for v in rl),  # a round abandoned unjudged is neither
            "rl_rejected": sum(v.status == "rejected" for v in rl),
            "agreement": first_active.metrics.get("agreement") if first_active else None}


def evaluate(start: str, store: ExperienceStore, summary: dict,
             args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Returns {env: {policy: mean return}} over the fixed evaluation seeds (and the teacher's collected episodes)."""
    seeds = [EVAL_SEED + i for i in range(args.eval_episodes)]
    policies = {"random": (RandomPolicy(seed=args.seed), False),
                "teacher": (make_teacher(start, seed=args.seed, device=args.device), True)}
    start_name = policies["teacher"][0].name
    for key in ("distilled", "active"):
        version = summary[key]
        if version is not None:
            policies[key] = (HrmPolicy.load(version.checkpoint_path, version.id, device=args.device), True)
            # as the agent acts: sampling at temperature 1 (where greedy play loops, as in BabyAI, it matters)
            policies[f"{key} sampled"] = (HrmPolicy(policies[key][0].model, version.id, seed=args.seed), False)
    results = {}
    for env in args.envs:
        collected = [e.episode_return for e in store.episodes(env=env, policy=start_name)]
        results[env] = {"optimum": make_env(env).optimal_return() or 1.0,
                        "teacher acting": score(env, np.array(collected)) if collected else float("nan")}
        for name, (policy, greedy) in policies.items():
            started = time.perf_counter()
            results[env][name] = score(env, episode_returns(policy, env, seeds, greedy=greedy, batch=100))
            console.print(f"  [{start}] {env} {name}: {results[env][name]:.3f} ({time.perf_counter() - started:.0f}s)")
    return results


def show(start: str, summary: dict, results: dict, minutes: float) -> None:
    active = summary["active"]
    console.print(f"\n[bold]{start}[/]: {summary['decisions']} decisions | {minutes:.1f} min | distillations "
                  f"{summary['distillations']}, first activated: "
                  + (f"v{summary['distilled'].id} (held-out agreement {summary['agreement']:.1%})"
                     if summary["distilled"] else "none")
                  + " | states the teacher visited: "
                  + ", ".join(f"{env} {n}" for env, n in summary["teacher_states"].items())
                  + f" | RL candidates accepted {summary['rl_accepted']}, rejected {summary['rl_rejected']} | active "
                  + (f"v{active.id} ({active.kind})" if active else "none (the teacher)"))
    table = Table("env", "random", "teacher acting", "teacher greedy", "distilled HRM", "HRM after RL",
                  "distilled sampled", "after RL sampled", "optimum", "after RL / optimum", "aim")
    for env, row in results.items():
        cells = [f"{row[key]:.3f}" if key in row else "—" for key in
                 ("random", "teacher acting", "teacher", "distilled", "active", "distilled sampled", "active sampled")]
        target = AIMS.get(env, SUCCESS_AIM)
        final = row.get("active")  # None while the teacher still acts: nothing of the agent's own meets the aim
        ratio = "—" if final is None else f"{final / row['optimum']:.2f}"
        verdict = "✗ (no HRM)" if final is None else "✓" if final >= target else "✗"
        table.add_row(env, *cells, f"{row['optimum']:.3f}", ratio, f"≥ {target:g} {verdict}")
    console.print(table)


def rl_rounds(store: ExperienceStore, envs: list[str]) -> list[dict]:
    """Prints and returns one row per RL round: the verdict, each env's judged return before → after, and the update's
    KL, entropy and value loss (— where the model critic served every row: no value head was fitted)."""
    runs = sorted(store.training_runs(kind="rl"), key=lambda r: r.id)
    table = Table("round", "version", "verdict", *(f"{env} champion → challenger" for env in envs),
                  *(f"{env} rollouts" for env in envs), "decisions", "rows", "epochs", "approx KL", "entropy",
                  "value loss", title="RL rounds (judged on the fixed champion/challenger seeds: greedy where an env's "
                  "text is its state, sampled elsewhere)")
    rows = []
    for i, run in enumerate(runs):
        m = run.metrics[-1] if run.metrics else {}
        rows.append(m | {"round": i, "version": run.model_version_id})
        if not m:
            table.add_row(str(i), "—", run.status, *[""] * (2 * len(envs) + 6))
            continue
        table.add_row(str(i), str(run.model_version_id), "accepted" if m.get("accepted") else "rejected",
                      *(f"{m.get(f'{env}/champion', float('nan')):.3f} → {m.get(f'{env}/challenger', float('nan')):.3f}"
                        for env in envs),
                      *(f"{m.get(f'{env}/rollout_return', float('nan')):.3f}" for env in envs),
                      f"{m.get('decisions', 0):,}", f"{m.get('rows', 0):,}", f"{m.get('epochs', 0):.3g}",
                      f"{m.get('approx_kl', float('nan')):.4f}", f"{m.get('entropy', float('nan')):.3f}",
                      f"{m['value_loss']:.3g}" if "value_loss" in m else "—")
    console.print(table)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", default="tiny,oracle:0.5", help="comma-separated teachers to start from")
    parser.add_argument("--minutes", type=float, default=60.0, help="loop budget per start")
    parser.add_argument("--eval-episodes", type=int, default=500)
    parser.add_argument("--envs", default=",".join(ENVS), help="comma-separated env names")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or mps (the agent's --device)")
    parser.add_argument("--out", default="runs/bench-competence", help="folder of one store and run per start")
    parser.add_argument("--eval-only", action="store_true", help="score the stores already in --out")
    parser.add_argument("--plot", action="store_true", help="also write each start's learning curves (curves.png)")
    args = parser.parse_args()
    args.envs = args.envs.split(",")
    out = Path(args.out)
    starts = args.starts.split(",")
    missing = [s for s in starts if not (out / s.replace(":", "-") / "aegis.db").is_file()]
    if args.eval_only and missing:
        parser.error(f"--eval-only: no store from an earlier run for {', '.join(missing)} in {out}; run without "
                     "--eval-only first")
    console.print(f"threads {torch.get_num_threads()} | envs {', '.join(args.envs)} | {args.minutes:g} min per start | "
                  f"{args.eval_episodes} evaluation episodes per env and policy")
    for start in starts:
        folder = out / start.replace(":", "-")
        started = time.perf_counter()
        if args.eval_only:
            store = ExperienceStore(folder / "aegis.db")
        else:
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            store = run_loop(start, folder, args)
        summary = loop_summary(store, args.envs)
        results = evaluate(start, store, summary, args)
        show(start, summary, results, (time.perf_counter() - started) / 60)
        rounds = rl_rounds(store, args.envs)
        report = {"results": results, "decisions": summary["decisions"], "agreement": summary["agreement"],
                  "teacher_states": summary["teacher_states"],
                  "rl_accepted": summary["rl_accepted"], "rl_rejected": summary["rl_rejected"], "rl_rounds": rounds}
        (folder / "results.json").write_text(json.dumps(report, indent=2))
        if args.plot:
            console.print(f"learning curves: {save_learning_curves(store, folder / 'curves.png', args.envs)}")
        console.print(f"results: {folder / 'results.json'}")


if __name__ == "__main__":
    main()
