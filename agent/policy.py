"""The batched policy contract (Observation in, Decision out) and the uniform random baseline."""

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Observation:
    """What a policy sees at one step: the env, its task id, the text to read, the legal action names, the state."""

    env_name: str
    task_id: int
    text: str
    legal_actions: tuple[str, ...]
    state: object  # the env's raw observation (hashable); only oracles look at it
    task: str = ""  # one sentence stating the env's goal (the teacher's prompt starts with it)


@dataclass(frozen=True)
class Decision:
    """A policy's choice: an index into the observation's legal_actions and the probabilities over them."""

    action: int
    probs: tuple[float, ...]


class Policy(Protocol):
    """Anything that decides a batch of observations at once (the runner steps its envs in lockstep)."""

    name: str
    version: int | None  # the registered model version acting; None for teachers and baselines

    def decide(self, observations: list[Observation], greedy: bool = False) -> list[Decision]:
        """Return one Decision per observation: sampled from its probabilities, or their argmax when greedy."""
        ...


def decision_from_probs(probs: np.ndarray, rng: np.random.Generator, greedy: bool) -> Decision:
    """Return the Decision that samples `probs` with `rng` (or takes its first argmax when greedy)."""
    action = int(np.argmax(probs)) if greedy else int(rng.choice(len(probs), p=probs))
    return Decision(action, tuple(float(p) for p in probs))


def softmax(scores: np.ndarray) -> np.ndarray:
    """Return the softmax of a 1-D array of log-scores, in float64."""
    z = np.exp(np.asarray(scores, dtype=np.float64) - np.max(scores))
    return z / z.sum()


def decision_from_scores(scores: np.ndarray, rng: np.random.Generator, greedy: bool,
                         temperature: float = 1.0) -> Decision:
    """Return the Decision for per-action log-scores: it stores softmax(scores) and acts on its argmax (greedy) or
    on a sample from softmax(scores / temperature)."""
    probs = softmax(scores)
    if greedy or temperature == 1.0:
        return decision_from_probs(probs, rng, greedy)
    action = int(rng.choice(len(probs), p=softmax(np.asarray(scores, dtype=np.float64) / temperature)))
    return Decision(action, tuple(float(p) for p in probs))


class RandomPolicy:
    """Uniform over the legal actions; greedy takes the first legal action (the argmax of a uniform distribution)."""

    name = "random"
    version = None

    def __init__(self, seed: int = 0):
        self._rng = np.random.default_rng(seed)

    def decide(self, observations: list[Observation], greedy: bool = False) -> list[Decision]:
        """Return one uniform Decision per observation."""
        n_legal = [len(obs.legal_actions) for obs in observations]
        return [decision_from_probs(np.full(n, 1.0 / n), self._rng, greedy) for n in n_legal]
