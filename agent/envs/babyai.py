"""BabyAI levels (minigrid) as text: what the agent sees in its 7×7 view as sentences, and the BabyAI bot as expert.

The agent sees a 7×7 square in front of it (itself at the middle of the bottom row, facing "forward"). Each object
in view becomes a phrase with its position relative to the agent — "a red ball 2 steps left and 1 step forward" —
walls become the distance to the nearest one straight ahead, left and right, then what the agent carries, the way it
faces and its last two actions, and the mission comes last (the student's input is truncated from the left, so the end
is what it always keeps). The facing and the last actions are what a policy that sees one view at a time needs to act
like the bot, which plans on the true grid and remembers: its shortest path breaks ties by compass direction, and
while it explores it keeps turning the way it began (measured in the README: the held-out agreement a student reaches).
The objects the mission names that the agent saw earlier in the episode and no longer sees are remembered where they
were last seen, relative to where the agent now stands ("You remember a red ball 2 steps right and 1 step back."): the
bot walks to an object it saw and turned away from, and a student that forgot it spent half its losing steps there
(README). Only the mission's objects: every object remembered made most GoToLocal inputs longer than the student reads.

The state a policy sees (`Observation.state`) is (seed, actions so far): hashable, stored as text, and enough to
rebuild the episode, which is how the expert (`minigrid`'s BabyAI bot, which plans on the true grid) is asked what to
do in any state.
"""

import contextlib
import io
from collections.abc import Hashable, Sequence
from typing import Any, SupportsFloat

import gymnasium
import numpy as np
from minigrid.core.constants import COLOR_TO_IDX, IDX_TO_COLOR, IDX_TO_OBJECT, STATE_TO_IDX
from minigrid.utils.baby_ai_bot import BabyAIBot

from agent.envs.base import TextEnv
from agent.envs.seeds import training_seeds

_AGENT_X, _AGENT_Y = 3, 6  # the agent's cell in minigrid's egocentric 7×7 view (x right, y forward-to-back)
_DOOR_STATES = {v: k for k, v in STATE_TO_IDX.items()}
COMPASS = ("east", "south", "west", "north")  # minigrid's agent_dir 0..3


def _steps(n: int, direction: str) -> str:
    return f"{n} step{'s' if n != 1 else ''} {direction}"


def _where(right: int, forward: int) -> str:
    where = [_steps(abs(right), "left" if right < 0 else "right")] if right else []
    where += [_steps(abs(forward), "forward" if forward > 0 else "back")] if forward else []
    return " and ".join(where) or "here"


def _label(kind: int, colour: int, state: int) -> str | None:
    """Returns how an object of minigrid's (object, colour, state) codes is named ("red ball", "locked yellow door"),
    or None for what is not an object (walls, floor, empty or unseen cells)."""
    name = IDX_TO_OBJECT[kind]
    if name in ("unseen", "empty", "floor", "agent", "wall"):
        return None
    label = f"{IDX_TO_COLOR[colour]} {name}"
    return f"{_DOOR_STATES[state]} {label}" if name == "door" else label


def mission_objects(mission: str) -> list[tuple[str | None, str]]:
    """Returns the (colour or None, kind) of each object a BabyAI mission names: "put the red ball next to a key" →
    [("red", "ball"), (None, "key")]."""
    words = mission.replace(",", " ").split()
    return [(words[i - 1] if i > 0 and words[i - 1] in COLOR_TO_IDX else None, word)
            for i, word in enumerate(words) if word in ("ball", "box", "key", "door")]


def describe_view(image: np.ndarray, carrying: str | None, mission: str, facing: int,
                  last_actions: Sequence[str] = (), remembered: Sequence[tuple[int, int, str]] = ()) -> str:
    """Returns the sentences for one egocentric view: `image` is minigrid's (7, 7, 3) [object, colour, state],
    `facing` minigrid's direction (0 east … 3 north), `last_actions` the names of the actions that led here,
    `remembered` the objects seen before and out of view now, as (steps right, steps forward, name)."""
    things, walls = [], {}
    for x in range(image.shape[0]):
        for y in range(image.shape[1]):
            if (x, y) == (_AGENT_X, _AGENT_Y):
                continue
            kind, colour, state = (int(v) for v in image[x, y])
            right, forward = x - _AGENT_X, _AGENT_Y - y
            if IDX_TO_OBJECT[kind] == "wall":
                for direction, straight, distance in (("forward", right == 0, forward), ("left", forward == 0, -right),
                                                      ("right", forward == 0, right)):
                    if straight and distance > 0:
                        walls[direction] = min(walls.get(direction, distance), distance)
            elif (label := _label(kind, colour, state)) is not None:
                things.append((abs(right) + forward, f"a {label} {_where(right, forward)}"))
    # farthest first: the student's input is cut from the left, so what goes first is what is least needed
    lines = ["You see " + ", ".join(t for _, t in sorted(things, reverse=True)) + "." if things
             else "You see no objects."]
    if remembered:  # after the view: a long view is cut before the mission's objects are forgotten
        memory = sorted(((abs(r) + abs(f), f"a {label} {_where(r, f)}") for r, f, label in remembered), reverse=True)
        lines.append("You remember " + ", ".join(t for _, t in memory) + ".")
    if walls:
        lines.append("Walls: " + ", ".join(_steps(walls[d], d) for d in ("forward", "left", "right") if d in walls)
                     + ".")
    if carrying:
        lines.append(f"You carry a {carrying}.")
    lines.append(f"You face {COMPASS[facing]}" + (f" after {', '.join(last_actions)}." if last_actions else "."))
    lines.append(f"Mission: {mission}.")
    return "\n".join(lines)


class BabyAI(TextEnv):
    """A BabyAI level: reward 1 − 0.9·(steps / max steps) on completing the mission, 0 otherwise."""

    action_names = ["turn left", "turn right", "go forward", "pick up", "drop", "toggle"]
    description = "Complete the mission in the grid world; the sooner, the higher the reward."

    def __init__(self, name: str, task_id: int, env: gymnasium.Env):
        super().__init__(name, task_id, env)
        self.seed: int | None = None
        self.actions: tuple[int, ...] = ()
        self.obs: dict[str, Any] | None = None
        self.memory: dict[tuple[int, int], str] = {}  # grid cell → the mission's object last seen there
        self._in_view: set[tuple[int, int]] = set()  # the grid cells the current view shows
        self._seeds = np.random.default_rng()
        self._experts: dict[int, tuple] = {}  # seed → (actions, env, bot, suggestion): the bots of recent episodes

    def reset(self, seed: int | None = None) -> Hashable:
        """Starts the level generated from `seed` (a random one without it); returns the state (seed, ())."""
        self.seed = training_seeds(self._seeds, 1)[0] if seed is None else int(seed)
        with contextlib.redirect_stdout(io.StringIO()):  # minigrid prints each level it rejects while generating
            self.obs, _ = self.env.reset(seed=self.seed)
        self.memory = {}
        self._look()
        self.actions = ()
        self.state = (self.seed, self.actions)
        return self.state

    def step(self, action: int) -> tuple[Hashable, SupportsFloat, bool, bool, dict[str, Any]]:
        """Takes action index `action`; the returned observation is the new state (seed, actions so far)."""
        self.obs, reward, terminated, truncated, info = self.env.step(action)
        self._look()
        self.actions += (int(action),)
        self.state = (self.seed, self.actions)
        return self.state, reward, terminated, truncated, info

    def _pose(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Returns the agent's cell and the grid vectors of one step forward and one step right."""
        grid = self.env.unwrapped
        return np.asarray(grid.agent_pos), np.asarray(grid.dir_vec), np.asarray(grid.right_vec)

    def _look(self) -> None:
        """Updates the memory with what the current view shows: every cell it shows holds what is seen there now (if
        the mission names it)."""
        wanted = mission_objects(self.obs["mission"])
        origin, ahead, right = self._pose()
        self._in_view = set()
        image = self.obs["image"]
        for x in range(image.shape[0]):
            for y in range(image.shape[1]):
                if IDX_TO_OBJECT[int(image[x, y, 0])] == "unseen" or (x, y) == (_AGENT_X, _AGENT_Y):
                    continue
                cell = tuple(int(v) for v in origin + (_AGENT_Y - y) * ahead + (x - _AGENT_X) * right)
                self._in_view.add(cell)
                kind, colour, state = (int(v) for v in image[x, y])
                label = _label(kind, colour, state)
                named = (IDX_TO_COLOR[colour], IDX_TO_OBJECT[kind]) in wanted or (None, IDX_TO_OBJECT[kind]) in wanted
                if label is None or not named:
                    self.memory.pop(cell, None)
                else:
                    self.memory[cell] = label

    def remembered(self) -> list[tuple[int, int, str]]:
        """Returns the mission's objects seen earlier in the episode and out of view now: (steps right, steps forward,
        name)."""
        origin, ahead, right = self._pose()
        out = []
        for cell, label in self.memory.items():
            if cell not in self._in_view:
                offset = np.asarray(cell) - origin
                out.append((int(offset @ right), int(offset @ ahead), label))
        return out

    def observation_text(self) -> str:
        """Returns the current view, the mission's objects the agent remembers, what it carries, its facing and last
        two actions, and the mission."""
        carrying = self.env.unwrapped.carrying
        described = f"{carrying.color} {carrying.type}" if carrying is not None else None
        return describe_view(self.obs["image"], described, self.obs["mission"], int(self.obs["direction"]),
                             [self.action_names[a] for a in self.actions[-2:]], self.remembered())

    def render_text(self, state: Hashable) -> str:
        """Returns the text of any state (seed, actions), by replaying it on a copy of this level."""
        replay = _replay(self.name, self.task_id, self.env.spec.id, state)
        return replay.observation_text()

    def expert_action(self, state: Hashable) -> str | None:
        """Returns the BabyAI bot's action (its name) in `state` (seed, actions so far), or None where it thinks the
        mission is done. The bot plans on the true grid and remembers what it has seen, so it is fed the episode's
        actions: an episode asked about step by step (the teacher acting) continues its bot; any other state is
        replayed."""
        seed, actions = state
        known = self._experts.get(seed)
        if known is not None and known[0] == actions:
            return known[3]
        if known is not None and known[0] == actions[:-1]:
            _, env, bot, _ = known
            env.step(actions[-1])
            suggestion = bot.replan(actions[-1])
        else:
            env = gymnasium.make(self.env.spec.id)
            with contextlib.redirect_stdout(io.StringIO()):
                env.reset(seed=seed)
            bot = BabyAIBot(env.unwrapped)
            suggestion = bot.replan()
            for action in actions:
                env.step(action)
                suggestion = bot.replan(action)
        self._experts.pop(seed, None)
        self._experts[seed] = (actions, env, bot,
                               self.action_names[suggestion] if suggestion < len(self.action_names) else None)
        while len(self._experts) > 256:  # the oldest episode's bot goes
            self._experts.pop(next(iter(self._experts)))[1].close()
        return self._experts[seed][3]

    def success(self, episode_return: float, terminated: bool) -> bool:
        """Returns whether the mission was completed (the only way a BabyAI level pays)."""
        return episode_return > 0


def _replay(name: str, task_id: int, gym_id: str, state: Hashable) -> BabyAI:
    seed, actions = state
    env = BabyAI(name, task_id, gymnasium.make(gym_id))
    env.reset(seed=seed)
    for action in actions:
        env.step(action)
    return env
