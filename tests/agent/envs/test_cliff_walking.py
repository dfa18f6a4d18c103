import pytest

from agent.envs import make_env

GROUND = ". . . . . . . . . . . .\n"


def test_rendering_marks_the_agent_on_the_grid():
    env = make_env("CliffWalking-v1")
    assert env.reset(seed=0) == 36
    assert env.observation_text() == GROUND * 3 + "A C C C C C C C C C C G\nYou are on the start at row 3, column 0."
    assert env.render_text(13) == (
        GROUND + ". A . . . . . . . . . .\n" + GROUND + "S C C C C C C C C C C G\n"
        "You are on safe ground at row 1, column 1."
    )


def test_action_names_follow_gymnasium_indices():
    env = make_env("CliffWalking-v1")
    env.reset(seed=0)
    assert env.step(env.action_names.index("right"))[:2] == (36, -100)  # onto the cliff, back to the start
    assert env.step(env.action_names.index("up"))[0] == 24
    assert env.step(env.action_names.index("right"))[0] == 25
    assert env.step(env.action_names.index("left"))[0] == 24
    assert env.step(env.action_names.index("down"))[0] == 36
    assert env.legal_actions() == ["up", "right", "down", "left"]


def test_a_step_limit_is_added_and_the_optimum_is_the_13_step_path():
    env = make_env("CliffWalking-v1")
    assert env.env.spec.max_episode_steps == 200
    assert env.optimal_return() == pytest.approx(-13.0, rel=0.01)
    assert env.success(-13.0, terminated=True) and not env.success(-200.0, terminated=False)
