"""One round of the improve phase: a policy-gradient candidate from the active HRM's own episodes, then a
champion/challenger evaluation on fixed seeds that promotes it only if it is not worse beyond noise."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.evaluation import episode_returns, paired_difference
from agent.hrm_policy import HrmPolicy
from agent.rl import RlConfig, reinforce
from data.store import ExperienceStore, VersionRow
from hrm import load_model, save_model


@dataclass(frozen=True)
class ImproveConfig:
    """How candidates are made and judged."""

    rl: RlConfig = RlConfig()
    eval_episodes: int = 200
    """Evaluation episodes per env, on the same fixed seeds for champion and challenger."""
    eval_seed: int = 10_000
    noise: float = 2.0
    """A challenger is rejected if it trails the champion by more than `noise` standard errors."""
    out: str = "runs/models"


def evaluation_seeds(config: ImproveConfig) -> list[int]:
    """Returns the fixed evaluation seeds (the same every round, so comparisons are paired)."""
    return [config.eval_seed + i for i in range(config.eval_episodes)]


def judge(champion: HrmPolicy, challenger: HrmPolicy, envs: list[str], config: ImproveConfig) -> dict:
    """Returns per-env and pooled paired comparisons of greedy returns on the fixed seeds, and the verdict."""
    seeds = evaluation_seeds(config)
    report, olds, news = {}, [], []
    for env in envs:
        old = episode_returns(champion, env, seeds)
        new = episode_returns(challenger, env, seeds)
        scale = max(float(np.std(np.concatenate([old, new]))), 1e-8)  # pools envs on a common scale
        olds.append(old / scale)
        news.append(new / scale)
        report[env] = {"champion": float(old.mean()), "challenger": float(new.mean())}
    mean, stderr = paired_difference(np.concatenate(news), np.concatenate(olds))
    report["difference"], report["stderr"] = mean, stderr
    report["accepted"] = bool(mean >= -config.noise * stderr) if np.isfinite(stderr) else mean >= 0
    return report


def improve_round(store: ExperienceStore, active: VersionRow, since_episode: int, envs: list[str],
                  config: ImproveConfig, device: str | None = None) -> dict:
    """Trains a candidate on the active version's episodes newer than `since_episode`, judges it, and promotes or
    rejects it; returns the round's report (with "version" and "accepted")."""
    episodes = [e.id for e in store.episodes(finished=True) if e.model_version == active.id and e.id > since_episode]
    decisions = list(store.decisions(episode_ids=episodes))
    run_id = store.start_training_run("rl", {"parent": active.id, "episodes": len(episodes), **config.rl.__dict__})
    try:
        champion_model = load_model(active.checkpoint_path, device)
        challenger_model, metrics = reinforce(champion_model, decisions, config.rl)
        path = Path(config.out) / f"rl-{run_id}.pt"
        save_model(challenger_model, path)
        version = store.add_model_version("rl", path, metrics, parent_id=active.id)
        report = judge(HrmPolicy(champion_model, active.id), HrmPolicy(challenger_model, version), envs, config)
    except Exception as e:
        store.finish_training_run(run_id, "failed", error=f"{type(e).__name__}: {e}")
        raise
    store.add_run_metrics(run_id, {**metrics, **{k: v for k, v in report.items() if k != "accepted"}})
    store.finish_training_run(run_id, "succeeded", model_version_id=version)
    settle(store, active, version, report, envs)
    return {"version": version, **metrics, **report}


def settle(store: ExperienceStore, champion: VersionRow, challenger: int, report: dict, envs: list[str]) -> None:
    """Activates the challenger if the report accepts it; otherwise marks it rejected and the champion stays."""
    summary = ", ".join(f"{env} {report[env]['champion']:.2f}→{report[env]['challenger']:.2f}" for env in envs)
    if report["accepted"]:
        store.activate_version(challenger)
        store.log_event("promote", f"RL version {challenger} replaces {champion.id}: {summary}", version=challenger)
    else:
        store.set_version_status(challenger, "rejected", evaluation=report)
        store.log_event("reject", f"RL version {challenger} rejected, {champion.id} stays: {summary}",
                        version=challenger)
