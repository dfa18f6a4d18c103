"""The text-environment contract: a real gymnasium env seen as text, with named actions and its optimal values."""

from abc import ABC, abstractmethod
from collections.abc import Hashable
from typing import Any, ClassVar, SupportsFloat

import gymnasium
import numpy as np

from agent.envs.value_iteration import Solution, TabularModel, solve
from agent.policy import Observation


class TextEnv(ABC):
    """A gymnasium env (made with `gymnasium.make`, so its TimeLimit applies) that renders observations as text.

    Example:
        >>> from agent.envs import make_env
        >>> env = make_env("FrozenLake-v1")
        >>> env.reset(seed=0)
        0
        >>> print(env.observation_text())
        A F F F
        F H F H
        F F F H
        H F F G
        You are on the start at row 0, column 0.
        >>> env.step(env.action_names.index("down"))[1:4]
        (0, False, False)
    """

    action_names: ClassVar[list[str]]  # in the env's action-index order
    description: ClassVar[str]  # one sentence: the goal, for the teacher's prompt
    long_text: ClassVar[bool] = False  # True: its inputs and actions need the student's long preset (agent-29m-long)
    text_is_state: ClassVar[bool] = False
    """True where the text determines the env's state (the toy-text games): an optimal policy is then deterministic
    and the RL judge plays greedily. Where the text is a partial view (BabyAI, TextWorld) a reactive policy can need
    its randomness — greedy it repeats itself in look-alike places — so the judge plays as the agent acts, sampled."""

    def __init__(self, name: str, task_id: int, env: gymnasium.Env):
        self.name = name
        self.task_id = task_id
        self.env = env
        self.state: Hashable | None = None  # the current observation; None before the first reset

    def reset(self, seed: int | None = None) -> Any:
        """Return the first observation of a new episode (reproducible when `seed` is given)."""
        self.state, _ = self.env.reset(seed=seed)
        return self.state

    def step(self, action: int) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Return gymnasium's (observation, reward, terminated, truncated, info) after action index `action`."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.state = obs
        return obs, reward, terminated, truncated, info

    def observation_text(self) -> str:
        """Return the current observation as plain text (no ANSI codes)."""
        return self.render_text(self.state)

    @abstractmethod
    def render_text(self, state: Hashable) -> str:
        """Return the plain-text rendering of any observation `state` of this env."""

    def observe(self) -> Observation:
        """Returns what a policy sees of the env now: its text, legal actions, task id and raw state."""
        return Observation(self.name, self.task_id, self.observation_text(), tuple(self.legal_actions()), self.state,
                           task=self.task_description())

    def legal_actions(self) -> list[str]:
        """Return the names of the actions allowed now (every action, in these envs)."""
        return list(self.action_names)

    def task_description(self) -> str:
        """Return one sentence stating the goal."""
        return self.description

    @abstractmethod
    def success(self, episode_return: float, terminated: bool) -> bool:
        """Return whether an episode with this return and ending achieved the env's goal."""

    def optimal_q(self, state: Hashable) -> np.ndarray | None:
        """Return Q*(state, ·) over action_names, or None where the optimum is not known."""
        return None

    def optimal_return(self) -> float | None:
        """Return the optimal expected episode return over the start states, or None where it is not known."""
        return None

    def expert_action(self, state: Hashable) -> str | None:
        """Return an expert's action (its name) in `state` where the env has an expert but no Q* (e.g. a planning
        bot), or None."""
        return None

    def close(self) -> None:
        """Release the underlying gymnasium env."""
        self.env.close()


class TabularTextEnv(TextEnv):
    """A TextEnv whose unwrapped env exposes `P` and `initial_state_distrib`, solved by value iteration."""

    text_is_state = True

    _solutions: ClassVar[dict[str, Solution]] = {}  # one solve per env name per process

    def solution(self) -> Solution:
        """Return the (cached) value-iteration solution under this env's step limit."""
        if self.name not in self._solutions:
            unwrapped = self.env.unwrapped
            model = TabularModel.from_gymnasium(unwrapped.P)
            horizon = self.env.spec.max_episode_steps if self.env.spec is not None else None
            self._solutions[self.name] = solve(model, unwrapped.initial_state_distrib, horizon)
        return self._solutions[self.name]

    def optimal_q(self, state: Hashable) -> np.ndarray:
        """Return Q*(state, ·): the optimal expected return after each action with the whole step budget left."""
        return self.solution().q[state].copy()

    def optimal_return(self) -> float:
        """Return the exact optimal expected episode return, averaged over the env's start-state distribution."""
        return self.solution().optimal_return


class GridTextEnv(TabularTextEnv):
    """A TabularTextEnv on a grid: space-separated cells, the agent shown as "A", then a sentence saying where."""

    cell_names: ClassVar[dict[str, str]]  # map letter → where you are, e.g. "H" → "in a hole"

    @abstractmethod
    def grid_rows(self) -> list[str]:
        """Return the map, one string of cell letters per row (state = row * width + column)."""

    def render_text(self, state: int) -> str:
        """Return the grid with the agent's cell shown as "A" and a sentence naming the cell and its position."""
        rows = self.grid_rows()
        row, col = divmod(state, len(rows[0]))
        cells = [list(line) for line in rows]
        cells[row][col] = "A"
        grid = "\n".join(" ".join(line) for line in cells)
        return f"{grid}\nYou are {self.cell_names[rows[row][col]]} at row {row}, column {col}."
