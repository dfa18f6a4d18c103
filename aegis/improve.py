"""One round of the improve phase: the active HRM plays and records a budget of episodes, the RL update (AWR by
default, PPO selectable) trains a candidate on them, and champion/challenger on fixed seeds promotes it only if no
env got worse beyond noise."""

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from aegis.state import this_process
from agent.awr import awr_update
from agent.env_model import EnvModel
from agent.envs import env_class, make_env
from agent.evaluation import episode_returns, paired_difference
from agent.hrm_policy import HrmPolicy
from agent.kickstart import Demonstrations, demonstrations, teacher_edge, teacher_is_better, teacher_probs
from agent.policy import Policy
from agent.ppo import ppo_update
from agent.rl import (
    RlConfig,
    RlPolicy,
    Step,
    ValueHead,
    collect_rollouts,
    gae,
    group_rows,
    model_advantages,
    normalise_per_task,
)
from agent.student import StudentEncoder
from data.store import DEFAULT_MODELS, ExperienceStore, VersionRow
from hrm import Hrm, load_checkpoint, load_model, save_model


@dataclass(frozen=True)
class ImproveConfig:
    """How candidates are made and judged."""

    rl: RlConfig = RlConfig()
    eval_episodes: int = 200
    """Evaluation episodes per env, on the same fixed seeds for champion and challenger."""
    eval_seed: int = 10_000
    noise: float = 2.0
    """A challenger is rejected if, in any env, it trails the champion by more than `noise` standard errors."""
    out: str = DEFAULT_MODELS


def evaluation_seeds(config: ImproveConfig) -> list[int]:
    """Returns the fixed evaluation seeds (the same every round, so comparisons are paired)."""
    return [config.eval_seed + i for i in range(config.eval_episodes)]


ReturnsCache = dict[tuple, np.ndarray]
"""(version, env, evaluation seeds, greedy) → its returns on them: a champion is played once, not every round."""


def judge(champion: HrmPolicy, challenger: HrmPolicy, envs: list[str], config: ImproveConfig,
          cache: ReturnsCache | None = None, reference: HrmPolicy | None = None) -> dict:
    """Returns per-env paired comparisons of returns on the fixed seeds and the verdict: accepted only if no env is
    worse by more than `noise` standard errors (a gain in one env never buys a loss in another). Where an env's text is
    its state both play greedily; elsewhere both play as the agent acts, sampled with each episode's own random numbers
    (`episode_returns`). Either way a version's returns on the seeds are fixed, so a stored version's kept in `cache`
    (filled here) are not played again.

    `reference` (the distilled version RL started from, when it is no longer the champion) is a second bar the
    challenger must clear the same way: each round is judged against the one before, so a line of candidates each
    within noise of its champion could otherwise drift below where RL started (TextWorld, session 19: 0.750 → 0.695 →
    0.645 on the judging seeds, both rounds accepted)."""
    seeds = evaluation_seeds(config)
    cache = {} if cache is None else cache
    report: dict = {}
    for env in envs:
        greedy = env_class(env).text_is_state
        old, new = (_returns(policy, env, seeds, greedy, cache) for policy in (champion, challenger))
        mean, stderr = paired_difference(new, old)
        report[env] = {"champion": float(old.mean()), "challenger": float(new.mean()), "difference": mean,
                       "stderr": stderr, "worse": _worse(mean, stderr, config.noise), "greedy": greedy}
        if reference is not None:
            start = _returns(reference, env, seeds, greedy, cache)
            mean, stderr = paired_difference(new, start)
            report[env] |= {"reference": float(start.mean()), "reference_difference": mean,
                            "reference_stderr": stderr, "below_reference": _worse(mean, stderr, config.noise)}
            report[env]["worse"] |= report[env]["below_reference"]
    report["accepted"] = not any(report[env]["worse"] for env in envs)
    return report


def _worse(mean: float, stderr: float, noise: float) -> bool:
    """Returns whether a paired difference is below zero by more than `noise` standard errors (any loss where the
    standard error is not finite)."""
    return bool(mean < -noise * stderr if np.isfinite(stderr) else mean < 0)


def modelled_envs(envs: list[str], critic: str) -> list[str]:
    """Returns the envs whose advantages the empirical model gives (`RlConfig.critic`); GAE gives the others'."""
    return [env for env in envs if critic == "model" or (critic == "auto" and env_class(env).text_is_state)]


def _returns(policy: HrmPolicy, env: str, seeds: list[int], greedy: bool, cache: ReturnsCache) -> np.ndarray:
    version = getattr(policy, "version", None)
    if version is None:  # not a stored version: always played
        return episode_returns(policy, env, seeds, greedy)
    key = (version, env, tuple(seeds), greedy)
    if key not in cache:
        cache[key] = episode_returns(policy, env, seeds, greedy)
    return cache[key]


def reference_version(store: ExperienceStore, version: VersionRow) -> VersionRow:
    """Returns the distilled (imitation) ancestor of `version`: the kickstart reference of every RL round."""
    while version.kind != "imitation" and version.parent_id is not None:
        version = store.model_version(version.parent_id)
    return version


def learner_version(store: ExperienceStore, learner: int | None, active: VersionRow) -> VersionRow:
    """Returns the version the next RL round trains from: `learner` while it descends from the active version (a
    rollback or a new distillation makes the active version the learner again), else the active version."""
    candidate = version = store.model_version(learner) if learner is not None else None
    while version is not None and version.id != active.id:
        version = store.model_version(version.parent_id) if version.parent_id is not None else None
    return candidate if version is not None else active


def load_value_head(checkpoint: str | Path, model: Hrm) -> ValueHead:
    """Returns the value head stored beside the model (an RL checkpoint), or a fresh one (a distilled model)."""
    head = ValueHead(model.config.hidden_size)
    state = load_checkpoint(checkpoint).get("value_head")
    if state is not None:
        head.load_state_dict(state)
    return head.to(next(model.parameters()).device)


def optimizer_path(checkpoint: str | Path) -> Path:
    """Returns where the RL fit's optimizer state of a checkpoint is kept (beside it)."""
    return Path(checkpoint).with_suffix(".optim.pt")


def load_optimizer_state(checkpoint: str | Path) -> dict | None:
    """Returns the optimizer state saved beside `checkpoint` by the RL round that made it, if there is one."""
    path = optimizer_path(checkpoint)
    return torch.load(path, map_location="cpu", weights_only=True) if path.is_file() else None


class RoundStopped(Exception):
    """Raised into an RL round when the agent is asked to stop: the round is abandoned (its rollouts stay stored)."""


def _stop_if_asked(stop: Callable[[], bool]) -> None:
    """Raises RoundStopped if a stop was asked for. The agent's signal handler raises it at once, but an exception
    raised inside a finaliser or a library's cleanup is swallowed ("Exception ignored in …"): between its stages the
    round also asks (in the full test suite the round otherwise ran its 1,000,000 rollout decisions, ~100 s, to the
    end)."""
    if stop():
        raise RoundStopped("asked to stop")


def improve_round(store: ExperienceStore, active: VersionRow, envs: list[str], config: ImproveConfig,
                  round_index: int, device: str | None = None, env_model: EnvModel | None = None,
                  learner: VersionRow | None = None, played: ReturnsCache | None = None,
                  teacher: Policy | None = None, stop: Callable[[], bool] = lambda: False) -> dict:
    """Plays and records the learner's rollouts, trains a candidate from the learner on them (AWR or PPO), judges it
    against the active version, and promotes or rejects it; returns the round's report (with "version", "accepted",
    "episodes" and "decisions"). The learner is the active version unless the caller goes on training a line of
    rejected candidates (`learner`, a descendant of the active version): the served version stays gated either way.

    Where the model critic applies (`modelled_envs`), `env_model` (kept by the caller from round to round, a model of
    those envs) is refreshed with the store's new decisions; without one, a model of the whole store is built.
    `played` (also kept by the caller) spares playing the same champion's evaluation episodes again. `teacher` (the
    agent's) is asked at the rollouts' inputs in the envs where its stored episodes still return measurably more than
    the rollouts (`agent.kickstart`; AWR gives it `RlConfig.kickstart` of the target there)."""
    rl = config.rl
    learner = learner or active
    run_id = store.start_training_run("rl", {"parent": learner.id, "champion": active.id, "round": round_index,
                                             **asdict(rl), **this_process()})
    try:
        champion_model = load_model(active.checkpoint_path, device)
        learner_model = champion_model if learner.id == active.id else load_model(learner.checkpoint_path, device)
        policy = RlPolicy(learner_model, load_value_head(learner.checkpoint_path, learner_model), learner.id,
                          seed=rl.seed + round_index, precision=rl.precision)
        games = [make_env(env) for env in envs for _ in range(rl.games_per_env)]
        started = time.perf_counter()
        steps = collect_rollouts(policy, games, store, rl.rollout_decisions, seed=rl.seed * 1_000 + round_index,
                                 minutes=rl.rollout_minutes, stop=stop)
        _stop_if_asked(stop)
        seconds = {"rollout_s": time.perf_counter() - started}
        advantages, returns = gae(steps, rl.gamma, rl.gae_lambda)  # the returns fit the value head either way
        advantages, tables, model_pairs = normalise_per_task(steps, advantages), None, {}
        modelled = modelled_envs(envs, rl.critic)
        if modelled:
            env_model = env_model if env_model is not None else EnvModel(modelled)
            env_model.refresh(store)
            on_model = np.array([s.observation.env_name in modelled for s in steps])
            model_steps = [s for s, m in zip(steps, on_model, strict=True) if m]
            advantages[on_model], tables = model_advantages(env_model, policy, model_steps, rl.gamma)
            model_pairs = {"model_pairs": len(env_model)}
        _stop_if_asked(stop)
        asked = time.perf_counter()
        taught, shown, edges = _kickstart(store, teacher, steps, envs, rl, policy.encoder)
        seconds["teacher_s"] = time.perf_counter() - asked
        rows = group_rows(steps, advantages, returns, policy.encoder, action_advantages=tables, shrink=rl.shrink,
                          teacher=taught)
        optimizer_state = None
        if rl.update == "awr":
            candidate, critic, metrics, optimizer_state = awr_update(
                learner_model, policy.value_head, rows, rl, round_index, load_optimizer_state(learner.checkpoint_path),
                shown)
        else:
            reference = load_model(reference_version(store, learner).checkpoint_path, device)
            candidate, critic, metrics = ppo_update(learner_model, policy.value_head, reference, rows, rl, round_index)
        seconds["update_s"] = time.perf_counter() - started - seconds["rollout_s"] - seconds["teacher_s"]
        metrics |= model_pairs | edges | {"episodes": len({s.episode for s in steps}),
                                          "evaluated_inputs": policy.evaluations,
                    **{f"{env}/rollout_return": float(np.mean(r)) for env in envs
                       if (r := _episode_returns(steps, env))}}
        path = Path(config.out) / f"rl-{run_id}.pt"
        save_model(candidate, path, value_head=critic.state_dict())
        if optimizer_state is not None:
            torch.save(optimizer_state, optimizer_path(path))
        version = store.add_model_version("rl", path, metrics, parent_id=learner.id)
        _stop_if_asked(stop)
        with torch.no_grad():
            judged = time.perf_counter()
            start = reference_version(store, active)  # the distilled version this line of RL rounds began from
            started_from = (None if start.id == active.id else
                            HrmPolicy(load_model(start.checkpoint_path, device), start.id, precision=rl.precision))
            report = judge(HrmPolicy(champion_model, active.id, precision=rl.precision),
                           HrmPolicy(candidate, version, precision=rl.precision), envs, config, played, started_from)
        metrics |= seconds | {"judge_s": time.perf_counter() - judged}
    except RoundStopped:
        store.finish_training_run(run_id, "interrupted", error="interrupted: the agent was asked to stop")
        raise
    except Exception as e:
        store.finish_training_run(run_id, "failed", error=f"{type(e).__name__}: {e}")
        raise
    flat = {f"{env}/{k}": v for env in envs for k, v in report[env].items() if k not in ("worse", "below_reference")}
    store.add_run_metrics(run_id, {**metrics, **flat, "accepted": float(report["accepted"])})
    store.finish_training_run(run_id, "succeeded", model_version_id=version)
    settle(store, active, version, report, envs)
    # only the active version's and the next learner's (the candidate's) optimizer states are ever continued (~2× the
    # model on disk each): drop the learner's, and the old active version's once the candidate replaced it
    if report["accepted"]:
        stale = {learner.checkpoint_path, active.checkpoint_path}
    else:
        stale = {learner.checkpoint_path} - {active.checkpoint_path}
    for checkpoint in stale:
        optimizer_path(checkpoint).unlink(missing_ok=True)
    return {"version": version, **metrics, **report}


def _kickstart(store: ExperienceStore, teacher: Policy | None, steps: list[Step], envs: list[str], rl: RlConfig,
               encoder: StudentEncoder) -> tuple[list | None, Demonstrations | None, dict[str, float]]:
    """Returns (the teacher's probabilities per step where it is asked, else None; its own stored decisions in those
    envs; its edge per env, for the metrics): asked in the envs where its stored episodes return more than this
    round's rollouts beyond noise."""
    if teacher is None or rl.update != "awr" or rl.kickstart == 0:
        return None, None, {}
    edges, better = {}, set()
    for env in envs:
        edge, stderr = teacher_edge(store, teacher.name, env, _episode_returns(steps, env))
        if np.isfinite(edge):
            edges[f"{env}/teacher_edge"] = edge
        if teacher_is_better(edge, stderr):
            better.add(env)
    if not better:
        return None, None, edges
    asked = [s.observation.env_name in better for s in steps]
    return (teacher_probs(teacher, [s.observation for s in steps], asked),
            demonstrations(store, teacher.name, sorted(better), encoder), edges)


def _episode_returns(steps: list[Step], env: str) -> list[float]:
    totals: dict[int, float] = {}
    for s in steps:
        if s.observation.env_name == env:
            totals[s.episode] = totals.get(s.episode, 0.0) + s.reward
    return list(totals.values())


def settle(store: ExperienceStore, champion: VersionRow, challenger: int, report: dict, envs: list[str]) -> None:
    """Activates the challenger if the report accepts it; otherwise marks it rejected and the champion stays."""
    summary = ", ".join(f"{env} {report[env]['champion']:.2f}→{report[env]['challenger']:.2f}" for env in envs)
    if report["accepted"]:
        store.activate_version(challenger)
        store.log_event("promote", f"RL version {challenger} replaces {champion.id}: {summary}", version=challenger)
    else:
        worse = ", ".join(env + (f" — below the distilled start's {report[env]['reference']:.2f}"
                                 if report[env].get("below_reference") else "")
                          for env in envs if report[env]["worse"])
        store.set_version_status(challenger, "rejected", evaluation=report)
        store.log_event("reject", f"RL version {challenger} rejected (worse on {worse}), {champion.id} stays: "
                        f"{summary}", version=challenger)
