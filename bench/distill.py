"""Distillation on this machine: how fast the default recipe passes 70 % held-out agreement, and where it ends.

    python bench/distill.py [--decisions 1100] [--device cpu] [--out runs/bench-distill]

Fills a fresh store with ~1,100 oracle-teacher decisions on Taxi-v4 and FrozenLake-v1 (half each, 8 envs in
lockstep, seeded), then runs `train_hrm.py`'s default recipe on it (DistillArgs' defaults: agent-29m, distinct
decisions, 50 epochs, lr 3e-4 with warmup, AdamW, batch 32, at most 2 ACT segments) and prints: wall time and
epoch of the first held-out evaluation at ≥70 % agreement, the final agreement after all epochs, per env, against
the per-task majority baseline (the student that ignores the state), and the agreement on held-out decisions whose
state never occurs in the training split (generalisation).
Agreement counts any of the teacher's tied best actions (Taxi often has two shortest routes).
"""

import argparse
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aegis.distill import DistillArgs, distill, model_config  # noqa: E402
from agent.oracle import OracleTeacher  # noqa: E402
from agent.runner import VectorRunner  # noqa: E402
from agent.student import StudentEncoder, agrees_with_teacher, batches_by_length, evaluate_agreement  # noqa: E402
from data.datasets import build_distillation_data  # noqa: E402
from data.store import ExperienceStore  # noqa: E402
from hrm import load_model  # noqa: E402

ENVS = ("FrozenLake-v1", "Taxi-v4")


def fill_store(db: Path, decisions: int, seed: int) -> ExperienceStore:
    """Returns a fresh store holding about `decisions` oracle decisions, half on each of ENVS."""
    store = ExperienceStore(db)
    VectorRunner(list(ENVS) * 4, store, OracleTeacher(seed=seed), seed=seed).run(max_decisions=decisions)
    return store


def majority_agreement(train_rows: dict, held_rows: dict) -> float:
    """Returns the held-out agreement of always playing each task's most frequent training argmax."""
    majority = {}
    for task in train_rows["task_ids"].unique().tolist():
        picks = train_rows["teacher_probs"][train_rows["task_ids"] == task].argmax(-1).tolist()
        majority[task] = Counter(picks).most_common(1)[0][0]
    scores = torch.full_like(held_rows["teacher_probs"], -1.0)
    for row, task in enumerate(held_rows["task_ids"].tolist()):
        scores[row, majority.get(task, 0)] = 1.0
    agree = agrees_with_teacher(scores, held_rows["teacher_probs"]).float()
    return float((agree * held_rows["counts"]).sum() / held_rows["counts"].sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=1100)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or mps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/bench-distill", help="folder for the store and the run (replaced)")
    args = parser.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    store = fill_store(out / "oracle.db", args.decisions, args.seed)
    counts = {env: store.count_decisions(env=env) for env in ENVS}
    print(f"store: {sum(counts.values())} oracle decisions ({', '.join(f'{e} {n}' for e, n in counts.items())}) "
          f"| threads {torch.get_num_threads()}", flush=True)

    distill_args = DistillArgs(db=str(out / "oracle.db"), out=str(out / "models"), seed=args.seed,
                               device=args.device, activate=False)
    started = time.perf_counter()
    result = distill(distill_args)
    wall = time.perf_counter() - started

    config = model_config(distill_args)
    data = build_distillation_data(store, StudentEncoder.for_config(config),
                                   distill_args.held_out_fraction, distill_args.seed)
    checkpoint = store.model_version(result["version"]).checkpoint_path
    model = load_model(Path(checkpoint), "cpu")
    held = data.held_out.tensors
    envs = [env for env, _ in data.held_out.states]
    print(f"\ndefault recipe: agent-29m, {distill_args.epochs} epochs, lr {distill_args.lr:g}, "
          f"batch {distill_args.batch_size}"
          f" | {result['train_decisions']} train / {result['held_out_decisions']} held-out decisions (split by "
          f"episode) | {wall / 60:.1f} min in all")
    if "seconds_to_threshold" in result:
        print(f"first ≥70% held-out agreement: {result['seconds_to_threshold']:.0f} s "
              f"(epoch {result['epoch_to_threshold']:.0f}; aim ≤ 120 s)")
    else:
        print("first ≥70% held-out agreement: never reached")
    print(f"final held-out agreement: {result['agreement']:.1%} (aim ≥ 90%), mean ACT steps {result['steps']:.2f}, "
          f"{result['max_steps_agreement']:.1%} when every row runs all {config.halt_max_steps} segments")
    for env in ENVS:
        rows = torch.tensor([e == env for e in envs])
        if rows.any():
            env_rows = batches_by_length({k: v[rows] for k, v in held.items()}, 256)
            agreement = evaluate_agreement(model, env_rows, adaptive=True)
            print(f"  {env:<14} {agreement['agreement']:.1%} of {int(held['counts'][rows].sum())}")
    baseline = majority_agreement(data.train.tensors, held)
    print(f"per-task majority baseline: {baseline:.1%} → student / baseline = {result['agreement'] / baseline:.2f}×")
    print(f"unseen states: {result.get('unseen_agreement', float('nan')):.1%} of {result['unseen_decisions']} held-out "
          "decisions whose state is not in the training split")
    print(f"checkpoint: {checkpoint} (bench/decide.py --checkpoint …)")


if __name__ == "__main__":
    main()
