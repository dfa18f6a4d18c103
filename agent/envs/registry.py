"""The registered text environments: name → (task id, TextEnv class, gymnasium id, make kwargs).

Task ids are rows of the HRM's task embedding, so an id is never renumbered or reused; a new env takes the next
free id below MAX_TASKS. Adding a gymnasium env is a TextEnv subclass and one row here.

| task id | name              | gymnasium env                                      |
| ------- | ----------------- | -------------------------------------------------- |
| 0       | FrozenLake-v1     | FrozenLake-v1 (4x4, slippery, 100-step limit)      |
| 1       | FrozenLake-v1-8x8 | FrozenLake8x8-v1 (8x8, slippery, 200-step limit)   |
| 2       | Taxi-v4           | Taxi-v4 (dry, non-fickle, 200-step limit)          |
| 3       | CliffWalking-v1   | CliffWalking-v1 + a 200-step limit                 |
| 4       | Blackjack-v1      | Blackjack-v1 (sab=True)                            |
| 5       | BabyAI-GoToRedBall   | BabyAI-GoToRedBall-v0 (minigrid; 64 steps)      |
| 6       | BabyAI-GoToLocal     | BabyAI-GoToLocal-v0 (64 steps)                  |
| 7       | BabyAI-PickupLoc     | BabyAI-PickupLoc-v0 (64 steps)                  |
| 8       | BabyAI-PutNextLocal  | BabyAI-PutNextLocal-v0 (128 steps)              |
| 14      | TextWorld-medium     | Aegis/TextWorld-medium-v0: harder generated games (50 steps) |
| 15      | TextWorld-simple     | Aegis/TextWorld-simple-v0: generated games (50 steps) |

The BabyAI envs (`agent/envs/babyai.py`) import minigrid, and TextWorld (`agent/envs/textworld.py`) textworld, only
when one is made. TextWorld's commands and inputs are long: an env whose class sets `long_text = True` makes the
agent distil the `agent-29m-long` student (512 input tokens, actions of up to 16 tokens).

Your own env, without changing the project: name it as `package.module:ClassName` (`--envs my_envs:Maze`), where the
class subclasses TextEnv, sets `action_names`, `description` and `user_task_id` (a task-embedding row of its own,
from FIRST_USER_TASK to LAST_USER_TASK), implements `render_text` and `success`, and has a classmethod `make_gym()`
returning its gymnasium env (with a step limit). Its module must be importable (on PYTHONPATH or installed).
"""

import importlib
from typing import Any, NamedTuple

import gymnasium

from agent.envs.base import TextEnv
from agent.envs.blackjack import Blackjack
from agent.envs.cliff_walking import CliffWalking
from agent.envs.frozen_lake import FrozenLake
from agent.envs.taxi import Taxi

MAX_TASKS = 16  # rows in the HRM's task embedding
FIRST_USER_TASK, LAST_USER_TASK = 9, 13  # task ids left to users' own envs (the project's new envs take 15 down)


class EnvSpec(NamedTuple):
    """How to build one registered env: its task id, TextEnv class, gymnasium id and `gymnasium.make` kwargs."""

    task_id: int
    text_env: type[TextEnv] | str  # the class, or "module:Class" imported when the env is first made
    gym_id: str
    make_kwargs: dict[str, Any]


_SPECS: dict[str, EnvSpec] = {
    "FrozenLake-v1": EnvSpec(0, FrozenLake, "FrozenLake-v1", {}),
    # gymnasium's own 8x8 registration: FrozenLake-v1 with map_name="8x8" would keep the 4x4's 100-step limit.
    "FrozenLake-v1-8x8": EnvSpec(1, FrozenLake, "FrozenLake8x8-v1", {}),
    "Taxi-v4": EnvSpec(2, Taxi, "Taxi-v4", {}),
    # CliffWalking-v1 is registered without a TimeLimit; a wandering policy would never end an episode.
    "CliffWalking-v1": EnvSpec(3, CliffWalking, "CliffWalking-v1", {"max_episode_steps": 200}),
    "Blackjack-v1": EnvSpec(4, Blackjack, "Blackjack-v1", {}),
    "BabyAI-GoToRedBall": EnvSpec(5, "agent.envs.babyai:BabyAI", "BabyAI-GoToRedBall-v0", {}),
    "BabyAI-GoToLocal": EnvSpec(6, "agent.envs.babyai:BabyAI", "BabyAI-GoToLocal-v0", {}),
    "BabyAI-PickupLoc": EnvSpec(7, "agent.envs.babyai:BabyAI", "BabyAI-PickupLoc-v0", {}),
    "BabyAI-PutNextLocal": EnvSpec(8, "agent.envs.babyai:BabyAI", "BabyAI-PutNextLocal-v0", {}),
    "TextWorld-medium": EnvSpec(14, "agent.envs.textworld:TextWorld", "Aegis/TextWorld-medium-v0", {}),
    "TextWorld-simple": EnvSpec(15, "agent.envs.textworld:TextWorld", "Aegis/TextWorld-simple-v0", {}),
}

ENV_NAMES: tuple[str, ...] = tuple(_SPECS)
TASK_IDS: dict[str, int] = {name: spec.task_id for name, spec in _SPECS.items()}


def env_class(name: str) -> type[TextEnv]:
    """Returns the TextEnv class of a registered name or a user's `module:Class`, without making the env (its class
    attributes — `text_is_state`, `long_text` — say how the agent treats it); a ValueError as `make_env`'s."""
    if ":" in name:
        return _user_class(name)
    if name not in _SPECS:
        raise ValueError(f"unknown environment {name!r}; choose one of: {', '.join(ENV_NAMES)}, or name your own "
                         "TextEnv as module:Class")
    text_env = _SPECS[name].text_env
    if isinstance(text_env, str):
        module, cls = text_env.split(":")
        text_env = getattr(importlib.import_module(module), cls)  # also registers the module's gymnasium ids
    return text_env


def make_env(name: str) -> TextEnv:
    """Return a new TextEnv for a registered name or a user's `module:Class`; a ValueError says what is wrong in one
    line (for an unknown name: the choices)."""
    cls = env_class(name)
    if ":" in name:
        return cls(name, cls.user_task_id, cls.make_gym())
    spec = _SPECS[name]
    return cls(name, spec.task_id, gymnasium.make(spec.gym_id, **spec.make_kwargs))


def _user_class(name: str) -> type[TextEnv]:
    module, _, attribute = name.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"environment {name!r}: cannot import {attribute!r} from {module!r} ({e}); name an "
                         "importable TextEnv subclass as module:Class") from None
    if not (isinstance(cls, type) and issubclass(cls, TextEnv)):
        raise ValueError(f"environment {name!r} is not a TextEnv subclass (see agent/envs/base.py)")
    task_id = getattr(cls, "user_task_id", None)
    if not isinstance(task_id, int) or not FIRST_USER_TASK <= task_id <= LAST_USER_TASK:
        raise ValueError(f"environment {name!r}: set the class attribute user_task_id to a task id from "
                         f"{FIRST_USER_TASK} to {LAST_USER_TASK} (its row of the HRM's task embedding)")
    if not callable(getattr(cls, "make_gym", None)):
        raise ValueError(f"environment {name!r}: add a classmethod make_gym() that returns its gymnasium env")
    return cls
