"""TextWorld games as text environments: generated here, admissible commands as legal actions, the game's own
winning policy as the expert.

`textworld` (Microsoft's text-game generator, pure Python here) generates a game from a seed: rooms, objects and a
quest such as "open the refrigerator, take the teapot from it, put it on the pan". A difficulty (below) fixes the
generator's settings and two disjoint pools of games: training games from seeds 1,000 + i (50,000 of them, so nearly
every training episode plays a game never played before), held-out games from seeds 900,000 + j. An episode reset with
seed s plays held-out game (s − 50,000) mod n when s is an evaluation seed (`agent.envs.seeds.EVALUATION_SEEDS`, which
training never draws), training game s mod n otherwise, so what is evaluated was never trained on. Games are generated
on first use (~0.1 s) and cached under `runs/textworld/<difficulty>/` as TextWorld's game files (.json), which
TextWorld plays in Python from their logic — no Inform compilation, no interpreter, ~2 ms a command.

What the agent sees is compact, built from the game's facts rather than its prose: the room (its name, its exits, what
is in view), the inventory, the agent's own commands so far (the last eight), then the goal (the student's input is cut
from the left, so the goal, last, is always kept). The goal is the objective's steps without its greeting and sign-off,
a list ("First, go south. And then, take the passkey from the mantelpiece. …"), so the commands so far say which step is
next. There is no "last answer": every legal action succeeds, and what it changed is in the room and the inventory. The
legal actions are the game's admissible commands less the ones that change nothing ("examine …", "look", "inventory").
The reward is the game's score increase (1 when the quest is done).

The state a policy sees (`Observation.state`) is (seed, commands so far): hashable, stored as text, and enough to
replay the episode, which is how the expert (TextWorld's `policy_commands`, the shortest winning commands from the
current state) is asked what to do in any state.
"""

import os
import re
import string
from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, SupportsFloat

import gymnasium
import textworld
from gymnasium import spaces
from textworld.generator import make_game
from textworld.generator.data import KnowledgeBase

from agent.envs.base import TextEnv
from agent.envs.seeds import EVALUATION_SEEDS
from data.tokenizer import gpt2_tokenizer

GAMES_DIR = Path(__file__).resolve().parents[2] / "runs" / "textworld"
CHARSET = string.printable
MAX_LEGAL = 64  # the most legal actions an observation offers
MAX_COMMAND_TOKENS = 16  # the answer slots of the student's long preset (agent-29m-long)
HISTORY = 8  # the most recent commands the text lists
_INFOS = textworld.EnvInfos(admissible_commands=True, policy_commands=True, facts=True, objective=True, won=True,
                            lost=True)
_NO_CHANGE = ("examine ", "look", "inventory")


@dataclass(frozen=True)
class Difficulty:
    """The generator's settings for one family of games and the sizes of its two pools."""

    rooms: int
    objects: int
    quest_length: int
    train_games: int
    held_out_games: int


DIFFICULTIES = {
    # Two or three rooms' worth of furniture, a two-step quest ("open the chest, take the key from it"): the policy
    # has to read the goal and the room, as no two games share a layout or a quest.
    "simple": Difficulty(rooms=2, objects=4, quest_length=2, train_games=50_000, held_out_games=100),
    # Four rooms, eight objects, a four-step quest across rooms: a uniformly random player wins ~0.25 of the games
    # within the 50-step limit (0.78 in "simple"), the walkthrough all of them in four commands.
    "medium": Difficulty(rooms=4, objects=8, quest_length=4, train_games=50_000, held_out_games=100),
}


def game_file(difficulty: str, seed: int) -> Path:
    """Returns the cached game an episode reset with `seed` plays, generating it first if needed."""
    settings = DIFFICULTIES[difficulty]
    if seed in EVALUATION_SEEDS:
        pool, index, generator_seed = "held-out", (seed - EVALUATION_SEEDS.start) % settings.held_out_games, 900_000
    else:
        pool, index, generator_seed = "train", seed % settings.train_games, 1_000
    path = GAMES_DIR / difficulty / pool / f"game-{index}.json"
    if not path.exists():
        _generate(settings, generator_seed + index, path)
    return path


def _generate(settings: Difficulty, seed: int, path: Path) -> None:
    """Generates one game and writes its file into place whole (safe with several processes)."""
    options = textworld.GameOptions()
    options.kb = KnowledgeBase.default()  # parsed once per process; left unset, every game re-parses it (~0.45 s)
    options.seeds = seed
    options.nb_rooms, options.nb_objects, options.quest_length = settings.rooms, settings.objects, settings.quest_length
    game = make_game(options)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f"{path.name}.{os.getpid()}.part")
    game.save(str(scratch))
    os.replace(scratch, path)


def _clean(text: str | None) -> str:
    """Returns a game's text on one line."""
    return " ".join(line.strip() for line in (text or "").splitlines() if line.strip())


# TextWorld's objective is its grammar's "#prologue# (list_of_actions) #epilogue#" (house_instruction.twg): the
# prologue and the epilogue are flavour drawn from a few phrases ("Welcome to another fast paced round of TextWorld!
# Here is your task for today.", "And once you've done that, you win!"); only the steps between them say what to do.
_WELCOME = r"(?:[^.!?]*TextWorld(?:\? You do)?)?!"
_PROLOGUE = re.compile(
    rf"^(?:{_WELCOME} (?:Here is your task for today\. |Here is how to play! |Your task for today is to )?"
    r"|Hey, thanks for coming over to the TextWorld today, there is something I need you to do for me\. "
    r"|Your objective is to |Hey, thanks for coming over to TextWorld! Please )")
_EPILOGUE = re.compile(r" (?:Once that's all handled, you can stop!|And once you've done that, you win!"
                       r"|And if you do that, you're the winner!|That's it!|Got that\? Good!|Alright, thanks!)$")


def goal_text(objective: str | None) -> str:
    """Returns the steps of a game's objective on one line, without the grammar's greeting and sign-off (about 25 of
    the ~150 GPT-2 tokens an observation has, the same in every game)."""
    return _EPILOGUE.sub("", _PROLOGUE.sub("", _clean(objective)))


Facts = dict[str, list[tuple[str, ...]]]
"""A game state's facts by predicate: "at" → [("P", "study"), ("stand", "workshop"), …]."""


def _facts(state: textworld.GameState) -> tuple[Facts, dict[str, str]]:
    """Returns the state's facts by predicate, and each named thing's kind ("r" room, "c" container, "s" supporter,
    "d" door, "k" key, "o" object, …)."""
    facts: Facts = defaultdict(list)
    kinds = {}
    for fact in state.facts:
        facts[fact.name].append(tuple(a.name for a in fact.arguments))
        kinds.update((a.name, a.type) for a in fact.arguments)
    return facts, kinds


def _holding(facts: Facts, holder: str, relation: str) -> list[str]:
    """Returns what `relation` ("in", "on") puts in or on `holder`, each with its article."""
    return [_a(thing) for thing, where in facts[relation] if where == holder]


def room_text(facts: Facts, kinds: dict[str, str]) -> str:
    """Returns the room as its facts have it, without the game's prose: its name, its exits, what is in view (a
    closed or locked container's contents are not; locked shows as closed, as the game's own text has it)."""
    here = next(room for who, room in facts["at"] if who == "P")
    closed = {x for (x,) in facts["closed"] + facts["locked"]}
    doors = {(a, b): door for a, door, b in facts["link"]}
    exits = []
    for direction in ("north", "south", "east", "west"):
        for there, room in facts[f"{direction}_of"]:
            if room == here:
                door = doors.get((here, there))
                shut = "closed" if door in closed else "open"
                exits.append(f"{direction} (a {shut} {door})" if door else direction)
    seen, floor = [], []
    for thing, room in facts["at"]:
        if room != here or thing == "P":
            continue
        if kinds[thing] == "c":
            inside = _holding(facts, thing, "in")
            seen.append(f"a closed {thing}" if thing in closed else
                        f"an open {thing} with {_listed(inside)} in it" if inside else f"an empty open {thing}")
        elif kinds[thing] == "s":
            on = _holding(facts, thing, "on")
            seen.append(f"{_a(thing)} with {_listed(on)} on it" if on else f"an empty {thing}")
        elif kinds[thing] != "d":
            floor.append(_a(thing))
    if floor:
        seen.append(f"{_listed(floor)} on the floor")
    return (f"-= {here.title()} =-\nExits: {', '.join(exits) or 'none'}.\n"
            f"You see: {'; '.join(seen) or 'nothing'}.")


def _a(name: str) -> str:
    return f"{'an' if name[0].lower() in 'aeiou' else 'a'} {name}"


def _listed(things: list[str]) -> str:
    return things[0] if len(things) == 1 else f"{', '.join(things[:-1])} and {things[-1]}"


def compact_text(state: textworld.GameState) -> str:
    """Returns what the agent sees: the room (`room_text`), what it carries ("You are carrying: a shirt and a key.",
    as the game says it), the goal."""
    facts, kinds = _facts(state)
    carried = _holding(facts, "I", "in")
    inventory = f"You are carrying: {_listed(carried)}." if carried else "You are carrying nothing."
    return "\n".join((room_text(facts, kinds), inventory, f"Goal: {goal_text(state.objective)}"))


def with_history(text: str, commands: Sequence[str]) -> str:
    """Returns `text` (ending with its "Goal: …" line) with the commands so far, the last HISTORY of them, on a line
    before the goal."""
    if not commands:
        return text
    rest, goal = text.rsplit("\n", 1)
    said = "Your commands so far" if len(commands) <= HISTORY else f"Your last {HISTORY} commands"
    return f"{rest}\n{said}: {', '.join(commands[-HISTORY:])}.\n{goal}"


def useful_commands(state: textworld.GameState) -> list[str]:
    """Returns the admissible commands that can change the game and fit the student's answer (at most
    MAX_COMMAND_TOKENS GPT-2 tokens; longer ones are rare), at most MAX_LEGAL of them."""
    tokenizer = gpt2_tokenizer()
    return [c for c in state.admissible_commands if not c.startswith(_NO_CHANGE)
            and len(tokenizer(" " + c).input_ids) <= MAX_COMMAND_TOKENS][:MAX_LEGAL]


class TextWorldGym(gymnasium.Env):
    """One TextWorld difficulty as a gymnasium env: text observations, commands as text actions.

    `info` carries "admissible_commands" (the useful ones), "policy_commands" (a shortest win from here) and "won".
    """

    metadata = {"render_modes": []}

    def __init__(self, difficulty: str = "simple"):
        if difficulty not in DIFFICULTIES:
            raise ValueError(f"unknown TextWorld difficulty {difficulty!r}; choose one of: {', '.join(DIFFICULTIES)}")
        self.difficulty = difficulty
        self.observation_space = spaces.Text(max_length=8192, min_length=0, charset=CHARSET)
        self.action_space = spaces.Text(max_length=256, min_length=1, charset=CHARSET)
        self.game: Any = None  # the started textworld env of the current game
        self.game_path: Path | None = None
        self.game_state: textworld.GameState | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[str, dict]:
        super().reset(seed=seed)
        if seed is None:
            seed = int(self.np_random.integers(0, EVALUATION_SEEDS.start))
        path = game_file(self.difficulty, seed)
        if path != self.game_path:
            if self.game is not None:
                self.game.close()
            self.game, self.game_path = textworld.start(str(path), request_infos=_INFOS), path
        self.game_state = self.game.reset()
        return compact_text(self.game_state), self._info()

    def step(self, action: str) -> tuple[str, SupportsFloat, bool, bool, dict]:
        before = self.game_state.score or 0  # none before the first command
        self.game_state, score, done = self.game.step(action)
        return compact_text(self.game_state), float(score - before), bool(done), False, self._info()

    def _info(self) -> dict:
        state = self.game_state
        return {"admissible_commands": useful_commands(state), "policy_commands": list(state.policy_commands or []),
                "won": bool(state.won)}

    def close(self) -> None:
        if self.game is not None:
            self.game.close()
            self.game, self.game_path = None, None


for _difficulty in DIFFICULTIES:
    gymnasium.register(f"Aegis/TextWorld-{_difficulty}-v0", entry_point=TextWorldGym, max_episode_steps=50,
                       kwargs={"difficulty": _difficulty})


class TextWorld(TextEnv):
    """A TextWorld difficulty: reward 1 when the quest is done, within the step limit."""

    action_names: list[str] = []  # none fixed: the legal actions are the game's commands at each step
    description = "Win the text adventure: do what the goal says, in as few commands as possible."
    long_text = True  # its inputs and commands need the student's long preset (agent-29m-long)

    def __init__(self, name: str, task_id: int, env: gymnasium.Env):
        super().__init__(name, task_id, env)
        self.seed: int | None = None
        self.commands: tuple[str, ...] = ()
        self.text, self.info = "", {}
        self._experts: dict[int, TextWorld] = {}  # seed → a replay of a recent episode, asked for its expert move

    def reset(self, seed: int | None = None) -> Hashable:
        """Starts the game `seed` selects (a training game chosen at random without it); returns (seed, ())."""
        self.seed = int(self.env.unwrapped.np_random.integers(0, EVALUATION_SEEDS.start)) if seed is None else seed
        self.text, self.info = self.env.reset(seed=self.seed)
        self.commands = ()
        self.state = (self.seed, self.commands)
        return self.state

    def step(self, action: int) -> tuple[Hashable, SupportsFloat, bool, bool, dict[str, Any]]:
        """Plays legal action number `action`; the returned observation is the new state (seed, commands so far)."""
        return self.play(self.info["admissible_commands"][action])

    def play(self, command: str) -> tuple[Hashable, SupportsFloat, bool, bool, dict[str, Any]]:
        """Plays `command` as typed; returns what `step` does."""
        self.text, reward, terminated, truncated, self.info = self.env.step(command)
        self.commands += (command,)
        self.state = (self.seed, self.commands)
        return self.state, reward, terminated, truncated, self.info

    def observation_text(self) -> str:
        """Returns the room, the inventory, the commands so far and the goal."""
        return with_history(self.text, self.commands)

    def legal_actions(self) -> list[str]:
        """Returns the commands that can change the game now."""
        return list(self.info["admissible_commands"])

    def render_text(self, state: Hashable) -> str:
        """Returns the text of any state (seed, commands), by replaying it."""
        replay = self._replay(state)
        text = replay.observation_text()
        replay.close()
        return text

    def expert_action(self, state: Hashable) -> str | None:
        """Returns the first command of a shortest win from `state`, or None once the game is over. An episode asked
        about step by step continues its replay; any other state is replayed from the start."""
        seed, commands = state
        replay = self._experts.pop(seed, None)
        if replay is not None and commands[:len(replay.commands)] == replay.commands:
            for command in commands[len(replay.commands):]:
                replay.play(command)
        else:
            if replay is not None:
                replay.close()
            replay = self._replay(state)
        self._experts[seed] = replay
        while len(self._experts) > 64:  # the oldest episode's replay goes
            self._experts.pop(next(iter(self._experts))).close()
        wins = replay.info["policy_commands"]
        return wins[0] if wins else None

    def _replay(self, state: Hashable) -> "TextWorld":
        seed, commands = state
        replay = TextWorld(self.name, self.task_id, gymnasium.make(self.env.spec.id))
        replay.reset(seed=seed)
        for command in commands:
            replay.play(command)
        return replay

    def success(self, episode_return: float, terminated: bool) -> bool:
        """Returns whether the quest was done (the only way a game scores)."""
        return terminated and episode_return > 0

