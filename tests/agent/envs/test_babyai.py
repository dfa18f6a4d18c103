"""BabyAI as text: a view described as a person would check it, minigrid's own steps, and the bot as oracle."""

import gymnasium
import numpy as np
import pytest
from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX, STATE_TO_IDX

from agent.envs import make_env
from agent.envs.babyai import COMPASS, describe_view, mission_objects
from agent.oracle import OracleTeacher
from agent.student import StudentEncoder

LEVELS = ["BabyAI-GoToRedBall", "BabyAI-GoToLocal", "BabyAI-PickupLoc", "BabyAI-PutNextLocal"]


def _cell(kind: str, colour: str = "grey", state: str = "open") -> list[int]:
    return [OBJECT_TO_IDX[kind], COLOR_TO_IDX[colour], STATE_TO_IDX[state]]


def test_a_view_is_described_from_the_agents_side():
    image = np.array([[_cell("empty")] * 7 for _ in range(7)])  # image[x][y]: x left → right, y far → near
    image[3, 6] = _cell("agent")
    image[1, 4] = _cell("ball", "red")  # two columns left of the agent, two rows ahead
    image[3, 5] = _cell("door", "yellow", "locked")  # straight ahead, the next cell
    image[3, 1] = _cell("wall")  # five ahead (behind the door; minigrid would not show it, the text does not care)
    image[0, 6] = _cell("wall")  # three to the left, on the agent's row
    image[5, 6] = _cell("key", "blue")
    assert describe_view(image, carrying="green box", mission="go to the red ball", facing=3,
                         last_actions=["go forward", "turn left"]) == (
        "You see a red ball 2 steps left and 2 steps forward, a blue key 2 steps right, "
        "a locked yellow door 1 step forward.\n"
        "Walls: 5 steps forward, 3 steps left.\n"
        "You carry a green box.\n"
        "You face north after go forward, turn left.\n"
        "Mission: go to the red ball.")


def test_the_mission_s_objects_out_of_view_are_remembered_after_what_is_seen():
    image = np.array([[_cell("empty")] * 7 for _ in range(7)])
    image[3, 4] = _cell("key", "blue")
    assert describe_view(image, carrying=None, mission="go to the red ball", facing=0,
                         remembered=[(2, -1, "red ball"), (0, -3, "red ball")]) == (
        "You see a blue key 2 steps forward.\n"
        "You remember a red ball 3 steps back, a red ball 2 steps right and 1 step back.\n"
        "You face east.\n"
        "Mission: go to the red ball.")
    assert mission_objects("put the red ball next to a key") == [("red", "ball"), (None, "key")]


def test_turning_away_from_the_target_remembers_where_it_is():
    env = make_env("BabyAI-GoToLocal")
    env.reset(seed=0)  # hand-checked: the green ball 3 steps ahead, facing west
    assert "a green ball 3 steps forward" in env.observation_text() and "remember" not in env.observation_text()
    env.step(0)
    env.step(0)  # turned around: the ball is behind
    assert "You remember a green ball 3 steps back.\n" in env.observation_text()
    grid = env.env.unwrapped
    right, forward, label = env.remembered()[0]  # and it is where the text says
    found = grid.grid.get(*(grid.agent_pos + forward * grid.dir_vec + right * grid.right_vec))
    assert f"{found.color} {found.type}" == label == "green ball"
    env.step(0)  # a quarter turn more (facing north): in view again, to the left, so seen, not remembered
    assert "a green ball 3 steps left" in env.observation_text() and "remember" not in env.observation_text()


def test_the_text_says_where_the_agent_faces_and_what_it_just_did():
    env = make_env("BabyAI-GoToLocal")
    env.reset(seed=3)
    assert f"You face {COMPASS[env.env.unwrapped.agent_dir]}.\n" in env.observation_text()  # no actions yet
    for action in (0, 2, 1):  # turn left, go forward, turn right: the text keeps the last two
        env.step(action)
    assert f"You face {COMPASS[env.env.unwrapped.agent_dir]} after go forward, turn right.\n" in env.observation_text()


@pytest.mark.parametrize("name", LEVELS)
def test_steps_are_minigrids_own_and_states_replay(name):
    env = make_env(name)
    reference = gymnasium.make(env.env.spec.id)
    rng = np.random.default_rng(0)
    env.reset(seed=3)
    reference.reset(seed=3)
    for _ in range(40):
        action = int(rng.integers(len(env.action_names)))
        ours, theirs = env.step(action), reference.step(action)
        assert ours[1:4] == theirs[1:4] and (env.obs["image"] == theirs[0]["image"]).all()
        if ours[2] or ours[3]:
            break
    assert env.state == (3, env.actions) and env.render_text(env.state) == env.observation_text()


@pytest.mark.parametrize("name", LEVELS)
def test_the_bot_oracle_wins_its_levels_and_fits_the_student(name):
    oracle, encoder = OracleTeacher(), StudentEncoder(128, 4)
    for seed in range(5):
        env = make_env(name)
        env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            observation = env.observe()
            [decision] = oracle.decide([observation], greedy=True)
            assert max(decision.probs) == 1.0  # the bot's action, all of it
            _, reward, terminated, truncated, _ = env.step(decision.action)
            total, done = total + float(reward), terminated or truncated
        assert env.success(total, terminated), (name, seed)
    # every action name fits the student's answer slots, and no two read the same
    candidates = encoder.encode([(observation.text, observation.legal_actions, observation.task_id)])["candidates"][0]
    assert (candidates[:, 0] >= 0).all() and len({tuple(c.tolist()) for c in candidates}) == len(env.action_names)


def test_the_oracle_asked_out_of_order_replays_the_episode():
    env, oracle = make_env("BabyAI-GoToLocal"), OracleTeacher()
    env.reset(seed=11)
    first = env.observe()
    env.step(2)
    second = env.observe()
    in_order = [oracle.probs(first), oracle.probs(second)]
    fresh = OracleTeacher()
    assert np.allclose(fresh.probs(second), in_order[1]) and np.allclose(fresh.probs(first), in_order[0])
