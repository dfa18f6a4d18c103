"""FrozenLake (4x4 or 8x8, slippery) as text: the lake map with the agent marked "A" and where it stands."""

from agent.envs.base import GridTextEnv


class FrozenLake(GridTextEnv):
    """FrozenLake-v1: reach G across slippery ice without falling into a hole (reward 1 at the goal, else 0)."""

    action_names = ["left", "down", "right", "up"]
    description = (
        "Walk from the start S to the goal G without falling into a hole H; "
        "the ice is slippery, so a move may carry you sideways."
    )
    cell_names = {"S": "on the start", "F": "on ice", "H": "in a hole", "G": "on the goal"}

    def grid_rows(self) -> list[str]:
        """Return the lake map: S start, F ice, H hole, G goal."""
        return [row.tobytes().decode() for row in self.env.unwrapped.desc]

    def success(self, episode_return: float, terminated: bool) -> bool:
        """Return whether the goal was reached (the only reward FrozenLake pays)."""
        return terminated and episode_return > 0
