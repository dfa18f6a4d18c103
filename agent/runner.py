"""The vectorised episode runner: N text environments in lockstep, one policy call per step for the whole batch.

Each step: observe every env, ask the policy once, step every env with its chosen action, then write the step's
decisions, the episodes that ended (return, length, success) and the episodes that replace them in one store
transaction. Reset seeds are drawn from the runner's seed and recorded, so any episode can be replayed.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from agent.envs import TextEnv, make_env
from agent.envs.seeds import training_seeds
from agent.policy import Decision, Observation, Policy
from agent.prompts import teacher_prompt
from data.store import DecisionRecord, EpisodeEnd, EpisodeStart, ExperienceStore


@dataclass
class FinishedEpisode:
    """An episode the runner closed."""

    episode_id: int
    env: str
    policy: str
    episode_return: float
    length: int
    success: bool
    truncated: bool


@dataclass
class Game:
    """An env and the recorded episode it is playing."""

    env: TextEnv
    episode_id: int = 0
    step: int = 0
    episode_return: float = 0.0

    def restart(self, seed: int, policy: Policy) -> EpisodeStart:
        """Resets the env to a new episode from `seed`; returns the episode to open in the store (its id is set
        once the store has it)."""
        self.env.reset(seed=seed)
        self.step, self.episode_return = 0, 0.0
        return EpisodeStart(self.env.name, seed, policy.name, policy.version)


def step_and_record(game: Game, observation: Observation, decision: Decision,
                    policy: Policy) -> tuple[DecisionRecord, EpisodeEnd | None]:
    """Plays `decision` in the game's env; returns the decision as the store records it and, if the episode ended,
    how it ended. The one place a step becomes a stored decision (runner, REPL, RL rollouts)."""
    _, reward, terminated, truncated, _ = game.env.step(decision.action)
    reward, terminated, truncated = float(reward), bool(terminated), bool(truncated)
    record = DecisionRecord(
        game.episode_id, game.step, observation.env_name, observation.task_id, str(observation.state),
        observation.text, teacher_prompt(observation), observation.legal_actions, decision.action, decision.probs,
        policy.name, policy.version, reward, terminated, truncated)
    game.step += 1
    game.episode_return += reward
    if not (terminated or truncated):
        return record, None
    success = bool(game.env.success(game.episode_return, terminated))
    return record, EpisodeEnd(game.episode_id, game.episode_return, game.step, success, truncated)


@dataclass
class VectorRunner:
    """Steps `len(env_names)` environments in lockstep under a policy and records everything in the store."""

    env_names: Sequence[str]
    store: ExperienceStore
    policy: Policy
    """The acting policy; may be replaced between steps (hot-swap)."""
    seed: int | tuple[int, ...] = 0
    """Seeds the draw of episode seeds (a tuple is mixed into one seed)."""
    greedy: bool = False
    """Act on the argmax instead of sampling."""
    slots: list[Game] = field(init=False)

    def __post_init__(self):
        self.seeds = np.random.default_rng(self.seed)
        self.slots = [Game(make_env(name)) for name in self.env_names]
        starts = [self._reset(slot) for slot in self.slots]
        for slot, episode_id in zip(self.slots, self.store.start_episodes(starts), strict=True):
            slot.episode_id = episode_id

    def _reset(self, slot: Game) -> EpisodeStart:
        return slot.restart(training_seeds(self.seeds, 1)[0], self.policy)

    def step(self) -> list[FinishedEpisode]:
        """Runs one lockstep step of every env; returns the episodes that ended in it."""
        policy = self.policy
        observations = [slot.env.observe() for slot in self.slots]
        decisions = policy.decide(observations, greedy=self.greedy)
        records, endings, starts, finished, restarted = [], [], [], [], []
        for slot, obs, decision in zip(self.slots, observations, decisions, strict=True):
            record, ending = step_and_record(slot, obs, decision, policy)
            records.append(record)
            if ending is not None:
                endings.append(ending)
                finished.append(FinishedEpisode(slot.episode_id, slot.env.name, policy.name, ending.episode_return,
                                                ending.length, ending.success, ending.truncated))
                starts.append(self._reset(slot))
                restarted.append(slot)
        new_ids = self.store.record_step(records, endings, starts)
        for slot, episode_id in zip(restarted, new_ids, strict=True):
            slot.episode_id = episode_id
        return finished

    def run(self, max_episodes: int | None = None, max_decisions: int | None = None,
            stop: Callable[[], bool] | None = None) -> list[FinishedEpisode]:
        """Steps until `max_episodes` episodes ended, `max_decisions` decisions were made, or `stop()`; returns
        the finished episodes."""
        finished: list[FinishedEpisode] = []
        decisions = 0
        while not ((max_episodes is not None and len(finished) >= max_episodes)
                   or (max_decisions is not None and decisions >= max_decisions) or (stop is not None and stop())):
            finished += self.step()
            decisions += len(self.slots)
        return finished
