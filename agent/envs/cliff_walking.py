"""CliffWalking as text: the 4x12 grid with the cliff, the agent marked "A" and where it stands."""

from agent.envs.base import GridTextEnv


class CliffWalking(GridTextEnv):
    """CliffWalking-v1: walk to the goal; -1 per step, -100 and back to the start for stepping onto the cliff."""

    action_names = ["up", "right", "down", "left"]
    description = (
        "Walk from the start S to the goal G in as few steps as possible; each step costs 1, "
        "and stepping onto the cliff C costs 100 and sends you back to the start."
    )
    cell_names = {"S": "on the start", ".": "on safe ground", "G": "on the goal", "C": "on the cliff"}

    def grid_rows(self) -> list[str]:
        """Return gymnasium's fixed layout: . ground, S start (bottom left), C cliff, G goal (bottom right)."""
        return ["............", "............", "............", "SCCCCCCCCCCG"]

    def success(self, episode_return: float, terminated: bool) -> bool:
        """Return whether the goal was reached (the only way CliffWalking terminates)."""
        return terminated
