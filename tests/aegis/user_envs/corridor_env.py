"""A user's own text env, outside the project's registry (named on the command line as corridor_env:Corridor)."""

import gymnasium

from agent.envs import TextEnv


class _Walk(gymnasium.Env):
    action_space = gymnasium.spaces.Discrete(2)
    observation_space = gymnasium.spaces.Discrete(6)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.position = 0
        return self.position, {}

    def step(self, action):
        self.position = max(0, self.position + (1 if action == 1 else -1))
        done = self.position == 5
        return self.position, float(done), done, False, {}


class Corridor(TextEnv):
    action_names = ["back", "ahead"]
    description = "Walk to the end of the corridor."
    user_task_id = 9

    @classmethod
    def make_gym(cls) -> gymnasium.Env:
        return gymnasium.wrappers.TimeLimit(_Walk(), 20)

    def render_text(self, state) -> str:
        return f"You are {5 - state} steps from the end of the corridor."

    def success(self, episode_return: float, terminated: bool) -> bool:
        return terminated
