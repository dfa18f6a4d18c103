"""Experience-store size and the distillation data's build at scale, the database's grouping next to the old one's.

    python bench/store.py [--decisions 1000000] [--size-at 100000] [--db-dir /tmp]

Fills a fresh SQLite store the way the agent does (VectorRunner over FrozenLake-v1 and Taxi-v4, 4 envs each,
OracleTeacher(epsilon=0.5)). At --size-at decisions it checkpoints the WAL and prints the file's bytes per decision
(indexes and texts included; aim ≤ 120). It fills on to --decisions, then builds the distillation data as
train_hrm.py does by default (distinct rows, DistillArgs' held-out fraction and seed, the student's encoder) twice,
each in a fresh process: with build_distillation_data (the database groups the decisions) and row by row (every
decision read into Python through store.decisions() and grouped there, as the build did before). Prints the wall
time and peak resident memory of each (aim ≤ 30 s and ≤ 2 GB at 1M decisions), their ratios, and whether both
built the same rows.
"""

import argparse
import multiprocessing as mp
import resource
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aegis.distill import DistillArgs, model_config  # noqa: E402
from agent.oracle import OracleTeacher  # noqa: E402
from agent.runner import VectorRunner  # noqa: E402
from agent.student import StudentEncoder  # noqa: E402
from data.datasets import (  # noqa: E402
    DistillationData,
    DistillationSplit,
    Encoder,
    build_distillation_data,
    is_teacher_decision,
    split_episodes,
)
from data.store import DecisionRecord, ExperienceStore  # noqa: E402

ENVS = ["FrozenLake-v1", "Taxi-v4"] * 4
MB = 2**20


def bytes_on_disk(db: Path) -> int:
    """Returns the store file's size after moving the WAL's pages into it."""
    with sqlite3.connect(db) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return db.stat().st_size


def row_by_row_build(store: ExperienceStore, encoder: Encoder, held_out_fraction: float = 0.2, seed: int = 0,
                     envs: Sequence[str] | None = None, failure_weight: float = 1.0, distinct: bool = False,
                     up_to: int | None = None) -> DistillationData:
    """Returns the distillation data built as before the database grouped: every decision loaded into Python and
    grouped there (build_distillation_data's rows, counts and tensors)."""
    decisions = [d for d in store.decisions(up_to=up_to) if is_teacher_decision(d) and (envs is None or d.env in envs)]
    train_ids, _ = split_episodes([d.episode_id for d in decisions], held_out_fraction, seed)
    outcome = {e.id: e.success for e in store.episodes(finished=True)}
    weighted = [(d, 1.0 if outcome.get(d.episode_id, True) else failure_weight) for d in decisions]

    def split(members: list[tuple[DecisionRecord, float]], merge: bool) -> DistillationSplit:
        groups: dict[tuple, list[tuple[DecisionRecord, float]]] = {}
        for i, (d, weight) in enumerate(members):
            key = (d.env, d.observation, d.legal_actions, d.task_id, tuple(round(p, 6) for p in d.probs))
            groups.setdefault(key if merge else (i,), []).append((d, weight))
        firsts = [group[0][0] for group in groups.values()]
        tensors = encoder.encode([(d.observation, d.legal_actions, d.task_id) for d in firsts])
        probs = torch.zeros(tensors["candidates"].shape[:2])
        for row, d in enumerate(firsts):
            probs[row, :len(d.probs)] = torch.tensor(d.probs)
        tensors["teacher_probs"] = probs / probs.sum(-1, keepdim=True)
        tensors["weights"] = torch.tensor([float(np.mean([w for _, w in group])) for group in groups.values()])
        tensors["counts"] = torch.tensor([float(len(group)) for group in groups.values()])
        episode_ids = sorted({d.episode_id for d, _ in members})
        return DistillationSplit(tensors, [(d.env, d.state) for d in firsts], episode_ids)

    return DistillationData(split([m for m in weighted if m[0].episode_id in train_ids], distinct),
                            split([m for m in weighted if m[0].episode_id not in train_ids], True))


def measure_build(db: str, row_by_row: bool) -> dict:
    """Builds the distillation data in this (fresh) process; returns its seconds, peak resident bytes (and those
    before the build), and a summary of the rows it built."""
    args = DistillArgs(db=db)
    config = model_config(args)
    encoder = StudentEncoder.for_config(config)
    store = ExperienceStore(db)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    build = row_by_row_build if row_by_row else build_distillation_data
    start = time.perf_counter()
    data = build(store, encoder, held_out_fraction=args.held_out_fraction, seed=args.seed,
                 failure_weight=args.failure_weight, distinct=args.distinct)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    rows = {side: (split.states, split.tensors["counts"].tolist(), split.tensors["inputs"].sum().item())
            for side, split in (("train", data.train), ("held_out", data.held_out))}
    return {"seconds": seconds, "peak": peak, "before": before, "rows": rows,
            "decisions": len(data.train) + len(data.held_out)}


def in_fresh_process(db: str, row_by_row: bool) -> dict:
    """Returns measure_build's result from a new process (so its peak memory is its own)."""
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(measure_build, db, row_by_row).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=1_000_000, help="decisions to build the data from")
    parser.add_argument("--size-at", type=int, default=100_000, help="decisions at which to measure bytes each")
    parser.add_argument("--db-dir", default=None, help="folder for the temporary store (default: the system's)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.db_dir) as folder:
        db = Path(folder) / "aegis.db"
        store = ExperienceStore(db)
        runner = VectorRunner(ENVS, store, OracleTeacher(epsilon=0.5, seed=0), seed=0)
        start = time.perf_counter()
        runner.run(max_decisions=args.size_at)
        filled = time.perf_counter() - start
        at = store.count_decisions()
        size = bytes_on_disk(db)
        print(f"store: {size / at:.1f} bytes per decision on disk at {at:,} decisions ({size / MB:.1f} MB with "
              f"indexes and texts; aim ≤ 120) | written at {at / filled:,.0f} decisions/s", flush=True)
        if args.decisions > at:
            runner.run(max_decisions=args.decisions - at)
        total = store.count_decisions()
        store.close()
        print(f"store: {total:,} decisions, {bytes_on_disk(db) / total:.1f} bytes each", flush=True)
        grouped, old = in_fresh_process(str(db), row_by_row=False), in_fresh_process(str(db), row_by_row=True)
    print(f"distillation data from {total:,} decisions (distinct rows: {len(grouped['rows']['train'][0]):,} train, "
          f"{len(grouped['rows']['held_out'][0]):,} held-out):")
    print(f"{'':<22}{'seconds':>10}{'peak RSS MB':>14}{'RSS before MB':>15}")
    for name, result in (("database grouping", grouped), ("row by row (before)", old)):
        print(f"{name:<22}{result['seconds']:>10.1f}{result['peak'] / MB:>14,.0f}{result['before'] / MB:>15,.0f}")
    build_mb = [(r["peak"] - r["before"]) / MB for r in (grouped, old)]
    print(f"row by row / database grouping: {old['seconds'] / grouped['seconds']:.1f}× the time, "
          f"{old['peak'] / grouped['peak']:.1f}× the peak RSS ({build_mb[1]:,.0f} / {build_mb[0]:,.0f} MB "
          "above the process before the build) | aim: grouping ≤ 30 s and ≤ 2 GB")
    same = grouped["rows"] == old["rows"] and grouped["decisions"] == old["decisions"] == total
    print(f"same rows, counts and inputs from both builds, every decision counted: {'yes' if same else 'NO'}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
