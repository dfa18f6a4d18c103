"""Text environments: gymnasium envs rendered as text, with named actions, task ids and exact optimal values."""

from agent.envs.base import GridTextEnv, TabularTextEnv, TextEnv
from agent.envs.registry import (
    ENV_NAMES,
    FIRST_USER_TASK,
    LAST_USER_TASK,
    MAX_TASKS,
    TASK_IDS,
    env_class,
    make_env,
)

__all__ = ["ENV_NAMES", "FIRST_USER_TASK", "LAST_USER_TASK", "MAX_TASKS", "TASK_IDS", "GridTextEnv", "TabularTextEnv",
           "TextEnv", "env_class", "make_env"]
