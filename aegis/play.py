"""Whole episodes played with a policy and recorded like the runner's (the REPL's `run`; evaluations).

Unlike VectorRunner, which restarts every env that ends so that collection never pauses, this plays exactly N
episodes and stops: every episode it opens is finished and recorded with its return, length and success.
"""

from dataclasses import dataclass

import numpy as np

from agent.envs import TextEnv, make_env
from agent.policy import Policy
from agent.prompts import teacher_prompt
from agent.runner import observe
from data.store import DecisionRecord, EpisodeEnd, EpisodeStart, ExperienceStore

BATCH = 32  # envs stepped in lockstep: one policy call per step for the whole batch


@dataclass
class Game:
    """An env and its episode so far."""

    env: TextEnv
    step: int = 0
    episode_return: float = 0.0


def play_episodes(store: ExperienceStore, policy: Policy, env: str, episodes: int,
                  rng: np.random.Generator) -> list[EpisodeEnd]:
    """Plays `episodes` whole greedy episodes of `env` in lockstep batches and records every decision and episode
    as the runner does (an episode is never left open); returns how each ended."""
    ended: list[EpisodeEnd] = []
    while len(ended) < episodes:
        games = [Game(make_env(env)) for _ in range(min(BATCH, episodes - len(ended)))]
        seeds = [int(s) for s in rng.integers(0, 2**31 - 1, len(games))]
        for game, seed in zip(games, seeds, strict=True):
            game.env.reset(seed=seed)
        live = list(range(len(games)))
        observations = [observe(game.env) for game in games]
        decisions = policy.decide(observations, greedy=True)  # first, so a policy that cannot act opens no episode
        ids = store.start_episodes([EpisodeStart(env, seed, policy.name, policy.version) for seed in seeds])
        while live:
            records, endings, still = [], [], []
            for i, obs, decision in zip(live, observations, decisions, strict=True):
                game = games[i]
                _, reward, terminated, truncated, _ = game.env.step(decision.action)
                records.append(DecisionRecord(
                    ids[i], game.step, env, obs.task_id, str(obs.state), obs.text, teacher_prompt(obs),
                    obs.legal_actions, decision.action, decision.probs, policy.name, policy.version, float(reward),
                    bool(terminated), bool(truncated)))
                game.step += 1
                game.episode_return += float(reward)
                if terminated or truncated:
                    success = bool(game.env.success(game.episode_return, bool(terminated)))
                    endings.append(EpisodeEnd(ids[i], game.episode_return, game.step, success, bool(truncated)))
                else:
                    still.append(i)
            store.record_step(records, endings)
            ended += endings
            live = still
            observations = [observe(games[i].env) for i in live]
            decisions = policy.decide(observations, greedy=True) if live else []
    return ended
