"""TextWorld as text: generated games, their commands as legal actions, the winning policy as oracle, held-out games."""

import pytest

from agent.envs import make_env
from agent.envs.seeds import EVALUATION_SEEDS
from agent.envs.textworld import DIFFICULTIES, game_file, goal_text, with_history
from agent.oracle import OracleTeacher
from agent.student import StudentEncoder


def test_the_legal_actions_are_the_games_commands_that_change_something():
    env = make_env("TextWorld-simple")
    env.reset(seed=0)
    admissible = env.env.unwrapped.game_state.admissible_commands  # TextWorld's own list
    assert env.legal_actions() == [c for c in admissible if not c.startswith(("examine ", "look", "inventory"))]
    assert "look" in admissible and any(c.startswith("examine ") for c in admissible)
    first_text = env.observation_text()
    assert first_text.startswith("-= ") and "You are carrying" in first_text
    assert first_text.splitlines()[-1].startswith("Goal: ")
    before = env.state
    command = env.legal_actions()[0]
    state, _, _, _, _ = env.step(0)
    assert state == (0, (command,)) and env.render_text(state) == env.observation_text()
    assert env.observation_text().splitlines()[-2] == f"Your commands so far: {command}."
    assert env.render_text(before) == first_text  # any state replays


def test_the_room_is_described_by_what_is_in_view_without_the_games_prose():
    env = make_env("TextWorld-medium")
    env.reset(seed=7)  # training game 7: a study, west of it a salon with a safe holding the passkey the goal wants
    assert env.observation_text().splitlines()[:2] == ["-= Study =-", "Exits: west."]
    env.play("go west")
    salon = env.observation_text().splitlines()
    assert salon[:3] == ["-= Salon =-", "Exits: east, west (a closed gate).",
                         "You see: a closed formless safe; a formless keycard on the floor."]  # the passkey is hidden
    env.play("open formless safe")
    assert env.observation_text().splitlines()[2] == ("You see: an open formless safe with a passkey in it; a formless "
                                                      "keycard on the floor.")


def test_the_goal_keeps_the_objectives_steps_and_drops_its_greeting_and_sign_off():
    assert goal_text("Welcome to another fast paced round of TextWorld! Here is your task for today. First of all, "
                     "open the box. After that, head east. And once you've done that, you win!") == (
        "First of all, open the box. After that, head east.")
    assert goal_text("Who's got a virtual machine and is about to play through an exciting round of TextWorld? You "
                     "do! First step, take the TextWorld style key. That's it!") == (
        "First step, take the TextWorld style key.")
    assert goal_text("Your objective is to eat the burger.") == "eat the burger."
    env = make_env("TextWorld-medium")
    for seed in range(20):  # real objectives: no greeting or sign-off left, the steps intact
        env.reset(seed=seed)
        goal = env.observation_text().splitlines()[-1]
        assert goal.startswith(("Goal: First", "Goal: Your first objective")) and goal.endswith(".")
        assert "TextWorld!" not in goal and "you win" not in goal and "thanks!" not in goal


def test_the_text_lists_the_last_eight_commands_before_the_goal():
    text = "-= Study =-\nYou are carrying: a shirt.\nGoal: First, go east. Then take the key."
    assert with_history(text, []) == text
    goal = text.splitlines()[-1]
    assert with_history(text, ["go east"]).splitlines()[-2:] == ["Your commands so far: go east.", goal]
    commands = [f"go {n}" for n in range(10)]
    assert with_history(text, commands).splitlines()[-2] == f"Your last 8 commands: {', '.join(commands[2:])}."


HELD_OUT = range(EVALUATION_SEEDS.start, EVALUATION_SEEDS.start + 3)


@pytest.mark.parametrize(("name", "seeds"), [("TextWorld-simple", range(4)), ("TextWorld-simple", HELD_OUT),
                                             ("TextWorld-medium", HELD_OUT)],
                         ids=["simple training games", "simple held-out games", "medium held-out games"])
def test_the_walkthrough_oracle_wins_its_games_and_fits_the_long_student(name, seeds):
    oracle, encoder = OracleTeacher(), StudentEncoder(512, 16)
    for seed in seeds:
        env = make_env(name)
        env.reset(seed=seed)
        total, done, steps = 0.0, False, 0
        while not done:
            observation = env.observe()
            [decision] = oracle.decide([observation], greedy=True)
            assert max(decision.probs) == 1.0  # the winning command, all of it
            batch = encoder.encode([(observation.text, observation.legal_actions, observation.task_id)])
            assert batch["lengths"][0] < 512  # the whole text is read, nothing cut
            _, reward, terminated, truncated, _ = env.step(decision.action)
            total, done, steps = total + float(reward), terminated or truncated, steps + 1
        assert env.success(total, terminated) and steps <= 10, (seed, steps)


def test_evaluation_seeds_play_held_out_games_and_no_training_seed_does():
    settings = DIFFICULTIES["simple"]
    held_out = {game_file("simple", s) for s in EVALUATION_SEEDS[:3]}
    training = {game_file("simple", s) for s in (0, 1, EVALUATION_SEEDS.stop)}
    assert all(p.parent.name == "held-out" for p in held_out) and all(p.parent.name == "train" for p in training)
    assert len(training) == 2 and EVALUATION_SEEDS.stop % settings.train_games == 0  # seed mod the pool
    assert {p.read_bytes() for p in held_out}.isdisjoint({p.read_bytes() for p in training})
