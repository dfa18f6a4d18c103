"""The policy contract (placeholder until the envs branch lands)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Observation:
    env_name: str
    task_id: int
    text: str
    legal_actions: tuple[str, ...]
    state: object
    task: str = ""


@dataclass(frozen=True)
class Decision:
    action: int
    probs: tuple[float, ...]
