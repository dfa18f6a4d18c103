"""Whole episodes played with a policy and recorded like the runner's (the REPL's `run`; evaluations).

Unlike VectorRunner, which restarts every env that ends so that collection never pauses, this plays exactly N
episodes and stops: every episode it opens is finished and recorded with its return, length and success.
"""

import numpy as np

from agent.envs import make_env
from agent.envs.seeds import training_seeds
from agent.policy import Policy
from agent.runner import Game, step_and_record
from data.store import EpisodeEnd, ExperienceStore

BATCH = 32  # envs stepped in lockstep: one policy call per step for the whole batch


def play_episodes(store: ExperienceStore, policy: Policy, env: str, episodes: int,
                  rng: np.random.Generator) -> list[EpisodeEnd]:
    """Plays `episodes` whole greedy episodes of `env` in lockstep batches and records every decision and episode
    as the runner does (an episode is never left open); returns how each ended."""
    ended: list[EpisodeEnd] = []
    while len(ended) < episodes:
        games = [Game(make_env(env)) for _ in range(min(BATCH, episodes - len(ended)))]
        starts = [game.restart(int(s), policy) for game, s in zip(games, training_seeds(rng, len(games)), strict=True)]
        live = list(range(len(games)))
        observations = [game.env.observe() for game in games]
        decisions = policy.decide(observations, greedy=True)  # first, so a policy that cannot act opens no episode
        ids = store.start_episodes(starts)
        for game, episode_id in zip(games, ids, strict=True):
            game.episode_id = episode_id
        while live:
            records, endings, still = [], [], []
            for i, obs, decision in zip(live, observations, decisions, strict=True):
                record, ending = step_and_record(games[i], obs, decision, policy)
                records.append(record)
                if ending is None:
                    still.append(i)
                else:
                    endings.append(ending)
            store.record_step(records, endings)
            ended += endings
            live = still
            observations = [games[i].env.observe() for i in live]
            decisions = policy.decide(observations, greedy=True) if live else []
    return ended
