"""Taxi as text: gymnasium's map with the taxi marked "T", then where the passenger is and where they are going."""

import gymnasium

from agent.envs.base import TabularTextEnv

_STOPS = "RGYB"  # gymnasium's passenger locations and destinations, in index order (index 4: in the taxi)


class Taxi(TabularTextEnv):
    """Taxi-v4: pick the passenger up and drop them at the destination; -1 a step, +20 delivery, -10 a wrong move."""

    action_names = ["south", "north", "east", "west", "pickup", "dropoff"]
    description = (
        "Drive the taxi T to the passenger, pick them up, drive to the destination and drop them off; "
        "each action costs 1, delivering earns 20, and a wrong pickup or dropoff costs 10."
    )

    def __init__(self, name: str, task_id: int, env: gymnasium.Env):
        if env.unwrapped.fickle_passenger:
            # A fickle passenger changes destination inside step(), outside the P table value iteration reads.
            raise ValueError(f"{name}: fickle_passenger=True is not supported (its dynamics are not in env.P)")
        super().__init__(name, task_id, env)

    def render_text(self, state: int) -> str:
        """Return the map (R G Y B stops, | walls, T the taxi) and sentences for the taxi, passenger and destination."""
        row, col, passenger, destination = self.env.unwrapped.decode(state)
        lines = [line.tobytes().decode() for line in self.env.unwrapped.desc]
        cell = 2 * col + 1  # map column of the taxi's cell
        lines[1 + row] = lines[1 + row][:cell] + "T" + lines[1 + row][cell + 1 :]
        where = "in the taxi" if passenger == 4 else f"at {_STOPS[passenger]}"
        status = f"The taxi is at row {row}, column {col}. The passenger is {where}."
        return "\n".join([*lines, f"{status} The destination is {_STOPS[destination]}."])

    def success(self, episode_return: float, terminated: bool) -> bool:
        """Return whether the passenger was delivered (the only way Taxi terminates)."""
        return terminated
