import pytest

from agent.envs import make_env

MAP = "+---------+\n|R: | : :G|\n| : | : : |\n| : : : : |\n{row3}\n{row4}\n+---------+\n"


def test_rendering_marks_the_taxi_and_states_passenger_and_destination():
    env = make_env("Taxi-v4")
    assert env.reset(seed=0) == 314
    assert env.observation_text() == MAP.format(row3="|T| : | : |", row4="|Y| : |B: |") + (
        "The taxi is at row 3, column 0. The passenger is at B. The destination is Y."
    )
    in_taxi = env.env.unwrapped.encode(4, 3, 4, 2)
    assert env.render_text(in_taxi) == MAP.format(row3="| | : | : |", row4="|Y| : |T: |") + (
        "The taxi is at row 4, column 3. The passenger is in the taxi. The destination is Y."
    )


def test_action_names_follow_gymnasium_indices():
    env = make_env("Taxi-v4")
    env.reset(seed=0)  # taxi at (3, 0): a wall to the east, open to the north
    decode = env.env.unwrapped.decode
    obs, reward, *_ = env.step(env.action_names.index("north"))
    assert decode(obs)[:2] == (2, 0) and reward == -1
    obs, *_ = env.step(env.action_names.index("east"))
    assert decode(obs)[:2] == (2, 1)
    assert env.step(env.action_names.index("pickup"))[1] == -10  # no passenger here
    assert env.legal_actions() == ["south", "north", "east", "west", "pickup", "dropoff"]


def test_registered_defaults_are_deterministic_and_solved_exactly():
    env = make_env("Taxi-v4")
    assert not env.env.unwrapped.fickle_passenger
    assert all(len(outcomes) == 1 for by_action in env.env.unwrapped.P.values() for outcomes in by_action.values())
    assert env.optimal_return() == pytest.approx(7.93, rel=0.01)


def test_success_means_delivered():
    env = make_env("Taxi-v4")
    assert env.success(8.0, terminated=True)
    assert not env.success(-200.0, terminated=False)
