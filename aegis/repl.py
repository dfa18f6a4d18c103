"""The interactive REPL on the experience store (what `python demo.py` runs).

Each command is a handler and a usage line in COMMANDS; a line is split with shlex and its words checked by the
handler, so a bad line ends in a one-line hint and nothing typed is ever evaluated as code. Every command is a few
short store transactions and nothing stays open while the prompt waits, so a running `start_training.py` never
waits on the REPL. torch and transformers load on the first command that needs a model (`switch`, `rollback`,
`decide`, `run`): `status` answers in about a second.

    python demo.py                          # the prompt: history in ~/.aegis_history, Tab completes
    python demo.py -c "episodes Taxi-v4 5"  # one command, then exit (0, or 2 after a one-line error)
"""

import argparse
import difflib
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from prompt_toolkit import PromptSession
from prompt_toolkit.completion import Completer, Completion
from prompt_toolkit.history import FileHistory
from rich.console import Console
from sqlalchemy.exc import SQLAlchemyError

from aegis import views
from aegis.play import play_episodes
from agent.envs import ENV_NAMES, make_env
from agent.policy import Policy
from agent.runner import Game
from data.store import DEFAULT_DB, ExperienceStore, StoreError

HISTORY = "~/.aegis_history"
MAX_LIST = 1000
MAX_EPISODES = 1000


class CommandError(Exception):
    """A command cannot run as typed; the message is the one line the user reads."""


def first_line(error: BaseException) -> str:
    """Returns the first line of an error's message, or its type's name when it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def env_name(word: str) -> str:
    """Returns the registered env `word` names (any case, or a unique prefix); CommandError lists the choices."""
    exact = [name for name in ENV_NAMES if name.lower() == word.lower()]
    matches = exact or [name for name in ENV_NAMES if name.lower().startswith(word.lower())]
    if len(matches) != 1:
        raise CommandError(f"unknown environment {word!r}; choose one of: {', '.join(ENV_NAMES)}")
    return matches[0]


def count(word: str, usage: str, maximum: int) -> int:
    """Returns `word` as a whole number from 1 to `maximum`; CommandError shows the usage otherwise."""
    if not word.isdigit() or not 1 <= int(word) <= maximum:
        raise CommandError(f"N must be a whole number from 1 to {maximum}, got {word!r}; usage: {usage}")
    return int(word)


def version_id(word: str) -> int:
    """Returns the version id in `3`, `v3` or `hrm:v3`."""
    digits = word.removeprefix("hrm:").removeprefix("v")
    if not digits.isdigit():
        raise CommandError(f"{word!r} is not a version id (3, v3 or hrm:v3); `models` lists them")
    return int(digits)


@dataclass(frozen=True)
class Command:
    """A REPL command: its handler (called with the words after the name), usage line and one-line summary."""

    handler: Callable[["Repl", list[str]], None]
    usage: str
    summary: str
    max_args: int = 0
    min_args: int = 0


@dataclass
class Repl:
    """Runs REPL commands on one store; keeps the acting policy loaded between commands."""

    store: ExperienceStore
    console: Console
    errors: Console
    """Where one-line errors and hints go (stderr for `-c`, the console in a session)."""
    device: str | None = None
    seed: int | None = None
    """Seeds the episodes `run` and `decide` start; None draws fresh ones every session."""
    done: bool = False
    rng: np.random.Generator = field(init=False)
    games: dict[str, Game] = field(init=False, default_factory=dict)
    _policy: tuple[object, Policy] | None = field(init=False, default=None)

    def __post_init__(self):
        self.rng = np.random.default_rng(self.seed)

    def execute(self, line: str) -> int:
        """Runs one command line; returns 0, or 2 after printing a one-line error or usage hint."""
        try:
            words = shlex.split(line)
        except ValueError as e:
            return self._fail(f"cannot split the line into words ({e}); `help` lists the commands")
        if not words:
            return 0
        name, args = words[0].lower(), words[1:]
        if name not in COMMANDS:
            close = difflib.get_close_matches(name, COMMANDS, n=1)
            hint = f"did you mean `{close[0]}`? " if close else ""
            return self._fail(f"unknown command {words[0]!r}; {hint}`help` lists the commands")
        command = COMMANDS[name]
        if not command.min_args <= len(args) <= command.max_args:
            return self._fail(f"wrong number of arguments; usage: {command.usage}")
        try:
            command.handler(self, args)
        except CommandError as e:
            return self._fail(str(e))
        except (StoreError, SQLAlchemyError) as e:
            return self._fail(f"the experience store failed: {first_line(e)}")
        return 0

    def _fail(self, message: str) -> int:
        self.errors.print(message, style="red", markup=False, highlight=False, soft_wrap=True)
        return 2

    def print(self, message: str) -> None:
        """Prints plain text (no markup)."""
        self.console.print(message, markup=False, highlight=False, soft_wrap=True)

    def policy(self) -> Policy:
        """Returns the acting policy: the active version's HRM, else the teacher; loaded once per change."""
        version = self.store.active_version()
        teacher = self.store.get_state("teacher") or "tiny"
        key = ("version", version.id) if version else ("teacher", teacher)
        if self._policy is None or self._policy[0] != key:
            try:
                if version is None:
                    from aegis.teachers import make_teacher  # transformers loads only when a teacher must act
                    policy = make_teacher(teacher, device=self.device)
                else:
                    from agent.hrm_policy import HrmPolicy  # torch loads only when a model must act
                    policy = HrmPolicy.load(version.checkpoint_path, version.id, device=self.device)
            except Exception as e:  # whatever broke, the user gets one line and the session goes on
                what = f"teacher {teacher!r}" if version is None else f"version {version.id}"
                raise CommandError(f"cannot load the acting policy ({what}): {first_line(e)}") from e
            self._policy = (key, policy)
        return self._policy[1]

    # --- commands -----------------------------------------------------------------------------------------------

    def status(self, args: list[str]) -> None:
        """Prints the status panel."""
        self.console.print(views.status_view(self.store))

    def training(self, args: list[str]) -> None:
        """Prints recent training runs and one run in detail (the given one, the running one, or the newest)."""
        runs = self.store.training_runs()
        if not runs:
            self.print("no training run yet: the agent distils once the store holds enough teacher decisions")
            return
        if args:
            wanted = count(args[0], COMMANDS["training"].usage, 10**9)
            chosen = next((r for r in runs if r.id == wanted), None)
            if chosen is None:
                raise CommandError(f"there is no training run {wanted}; `training` lists them")
        else:
            chosen = next((r for r in runs if r.status == "running"), runs[0])
        self.console.print(views.runs_table(runs[:5]))
        self.console.print(views.run_detail(chosen))

    def models(self, args: list[str]) -> None:
        """Prints the model versions."""
        versions = self.store.model_versions()
        if not versions:
            self.print("no model versions yet: the teacher acts until a distilled model reaches the threshold")
            return
        self.console.print(views.models_table(versions))

    def episodes(self, args: list[str]) -> None:
        """Prints the latest finished episodes (of one env if given) and mean returns per policy."""
        usage = COMMANDS["episodes"].usage
        env, limit = None, 10
        for word in args:
            if word.isdigit() or word.startswith("-"):
                limit = count(word, usage, MAX_LIST)
            else:
                env = env_name(word)
        recent = self.store.episodes(env=env, limit=limit)
        if not recent:
            self.print(f"no finished episodes{' of ' + env if env else ''} yet")
            return
        self.console.print(views.episodes_table(recent))
        self.console.print(views.summary_table([r for r in self.store.summary()
                                                if (env is None or r.env == env) and r.episodes]))

    def switch(self, args: list[str]) -> None:
        """Activates a version through the registry and logs it."""
        from aegis.registry import RegistryError, activate  # loads torch: activation test-loads the checkpoint

        wanted = version_id(args[0])
        before = self.store.active_version()
        if before is not None and before.id == wanted:
            self.print(f"version {wanted} is already active")
            return
        try:
            version = activate(self.store, wanted)
        except RegistryError as e:
            raise CommandError(str(e)) from e
        was = "the teacher" if before is None else f"version {before.id}"
        self.store.log_event("switch", f"REPL: version {version.id} activated (was {was})", version=version.id)
        self.print(f"version {version.id} is active (was {was}); a running agent swaps it in at its next sync, "
                   "after a canary decision")

    def rollback(self, args: list[str]) -> None:
        """Re-activates the version the active one replaced and logs it."""
        from aegis.registry import RegistryError, rollback

        before = self.store.active_version()
        try:
            version = rollback(self.store)
        except RegistryError as e:
            raise CommandError(str(e)) from e
        self.store.log_event("rollback", f"REPL: rolled back from version {before.id} to version {version.id}",
                             version=version.id)
        self.print(f"rolled back: version {version.id} is active again (version {before.id} retired)")

    def decide(self, args: list[str]) -> None:
        """Prints the acting policy's decision on the current observation of the REPL's own ENV game, then plays it."""
        env = env_name(args[0])
        if len(args) == 2 and not args[1].isdigit():
            raise CommandError(f"SEED must be a whole number, got {args[1]!r}; usage: {COMMANDS['decide'].usage}")
        policy = self.policy()
        if len(args) == 2 or env not in self.games:
            game = self.games[env] = Game(make_env(env))
            game.env.reset(seed=int(args[1]) if len(args) == 2 else int(self.rng.integers(0, 2**31 - 1)))
        game = self.games[env]
        obs = game.env.observe()
        try:
            [decision] = policy.decide([obs], greedy=True)
        except ValueError as e:  # e.g. the oracle in an env without known optimal values
            raise CommandError(f"{policy.name} cannot act in {env}: {first_line(e)}") from e
        self.console.print(views.decision_view(obs, decision, policy.name, game.step))
        _, reward, terminated, truncated, _ = game.env.step(decision.action)
        game.step += 1
        game.episode_return += float(reward)
        line = f"played {obs.legal_actions[decision.action]!r}: reward {views.number(float(reward))}"
        if terminated or truncated:
            success = game.env.success(game.episode_return, bool(terminated))
            line += (f"; episode over after {game.step} steps, return {views.number(game.episode_return)} "
                     f"({'success' if success else 'no success'}); the next `decide {env}` starts a new one")
            del self.games[env]
        self.print(line + " (not recorded in the store)")

    def run(self, args: list[str]) -> None:
        """Plays and records N greedy episodes with the acting policy; prints their returns."""
        env = env_name(args[0])
        n = count(args[1], COMMANDS["run"].usage, MAX_EPISODES) if len(args) == 2 else 10
        policy = self.policy()
        try:
            ended = play_episodes(self.store, policy, env, n, self.rng)
        except ValueError as e:  # e.g. the oracle in an env without known optimal values
            raise CommandError(f"{policy.name} cannot act in {env}: {first_line(e)}") from e
        except KeyboardInterrupt:
            self.print("interrupted: finished episodes are recorded; those in progress stay open")
            return
        self.print(views.run_report(env, policy.name, ended))

    def events(self, args: list[str]) -> None:
        """Prints the latest events."""
        events = self.store.events(limit=count(args[0], COMMANDS["events"].usage, MAX_LIST) if args else 20)
        if not events:
            self.print("no events yet")
            return
        self.console.print(views.events_table(events))

    def plot(self, args: list[str]) -> None:
        """Writes the learning curves (all envs, or ENV) as a PNG beside the store and prints its path."""
        from aegis.plots import save_learning_curves  # matplotlib loads only when a picture is asked for

        envs = [env_name(args[0])] if args else None
        folder = Path(self.store.url.removeprefix("sqlite:///")).parent if self.store.url.startswith(
            "sqlite:///") else Path("runs")
        path = folder / "plots" / f"curves-{time.strftime('%Y%m%d-%H%M%S')}.png"
        self.print(f"learning curves: {save_learning_curves(self.store, path, envs)}")

    def help(self, args: list[str]) -> None:
        """Prints the commands, or one command's usage."""
        if args:
            if args[0].lower() not in COMMANDS:
                raise CommandError(f"unknown command {args[0]!r}; `help` lists the commands")
            command = COMMANDS[args[0].lower()]
            self.print(f"{command.usage} — {command.summary}")
            return
        self.console.print(views.commands_table([(c.usage, c.summary) for c in COMMANDS.values()]))

    def quit(self, args: list[str]) -> None:
        """Ends the session."""
        self.done = True


COMMANDS: dict[str, Command] = {
    "status": Command(Repl.status, "status", "phase, decisions, episodes, who acts, last training run, RL progress"),
    "training": Command(Repl.training, "training [RUN]",
                        "training runs; per-epoch metrics, progress and loss/agreement sparklines of one run", 1),
    "models": Command(Repl.models, "models", "model versions with status, parent, metrics and checkpoint"),
    "episodes": Command(Repl.episodes, "episodes [ENV] [N]",
                        "the N latest finished episodes (10) and mean returns per policy", 2),
    "switch": Command(Repl.switch, "switch VERSION", "activate a model version (its checkpoint must load)", 1, 1),
    "rollback": Command(Repl.rollback, "rollback", "re-activate the version the active one replaced"),
    "decide": Command(Repl.decide, "decide ENV [SEED]",
                      "the acting policy's probabilities and choice on ENV's current observation, then play it "
                      "(SEED starts a new episode; nothing is recorded)", 2, 1),
    "run": Command(Repl.run, "run ENV [N]",
                   f"play N episodes (10, at most {MAX_EPISODES}) greedily with the acting policy, recorded", 2, 1),
    "events": Command(Repl.events, "events [N]", "the N latest events (20), newest first", 1),
    "plot": Command(Repl.plot, "plot [ENV]",
                    "write a PNG of returns over decisions (teacher → HRM → RL), distillation and RL rounds", 1),
    "help": Command(Repl.help, "help [COMMAND]", "this list, or one command's usage", 1),
    "quit": Command(Repl.quit, "quit", "leave (also `exit` or Ctrl-D)"),
    "exit": Command(Repl.quit, "exit", "leave"),
}
ENV_COMMANDS = ("episodes", "decide", "run", "plot")


class ReplCompleter(Completer):
    """Completes command names, then env names (episodes, decide, run), version ids (switch) or commands (help)."""

    def __init__(self, store: ExperienceStore):
        self.store = store

    def get_completions(self, document, complete_event) -> Iterator[Completion]:
        """Yields the completions of the word before the cursor."""
        text = document.text_before_cursor
        words = text.split()
        current = "" if not words or text[-1].isspace() else words[-1]
        position = len(words) - (1 if current else 0)  # index of the word being completed
        choices: list[tuple[str, str]] = []
        if position == 0:
            choices = [(name, command.summary) for name, command in COMMANDS.items()]
        elif position == 1 and words[0] in ENV_COMMANDS:
            choices = [(name, "") for name in ENV_NAMES]
        elif position == 1 and words[0] == "help":
            choices = [(name, "") for name in COMMANDS]
        elif position == 1 and words[0] == "switch":
            try:
                choices = [(str(v.id), f"{v.status} {v.kind}") for v in self.store.model_versions()]
            except SQLAlchemyError:  # a busy store just means no suggestions this time
                choices = []
        for choice, meta in choices:
            if choice.lower().startswith(current.lower()):
                yield Completion(choice, start_position=-len(current), display_meta=meta)


def interact(repl: Repl, session: PromptSession) -> None:
    """Reads and runs commands until `quit` or Ctrl-D; Ctrl-C clears the line or stops the running command."""
    while not repl.done:
        try:
            line = session.prompt("aegis> ")
        except KeyboardInterrupt:
            continue
        except EOFError:
            break
        try:
            repl.execute(line)
        except KeyboardInterrupt:
            repl.print("interrupted")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Returns demo.py's options: --db, -c/--command, --history, --device, --seed."""
    # argparse rather than hrm.cli: importing the hrm package loads torch, and `status` should answer in a second.
    parser = argparse.ArgumentParser(
        prog="demo.py", description="The Aegis REPL on the experience store; `help` inside lists the commands.")
    parser.add_argument("--db", default=DEFAULT_DB,
                        help=f"experience store: a SQLite file path or a SQLAlchemy URL (default: {DEFAULT_DB})")
    parser.add_argument("-c", "--command", help="run one command (e.g. \"status\") and exit")
    parser.add_argument("--history", default=HISTORY, help=f"the prompt's history file (default: {HISTORY})")
    parser.add_argument("--device", help="device of the acting policy: cpu, cuda, mps (default: the best available)")
    parser.add_argument("--seed", type=int, help="seed of the episodes `run` and `decide` start (default: fresh)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of demo.py; returns the exit code (2 after a one-line error)."""
    args = parse_args(argv)
    if "://" not in args.db and not Path(args.db).is_file():
        print(f"demo.py: there is no experience store at {args.db}; `python start_training.py` creates it, or "
              "point --db at one", file=sys.stderr)
        return 2
    try:
        store = ExperienceStore(args.db)
    except StoreError as e:
        print(f"demo.py: {e}", file=sys.stderr)
        return 2
    console = Console()
    try:
        if args.command is not None:
            return Repl(store, console, Console(stderr=True), args.device, args.seed).execute(args.command)
        repl = Repl(store, console, console, args.device, args.seed)
        if not sys.stdin.isatty():  # commands piped in: run them line by line, no prompt; 2 if any failed
            failed = False
            for line in sys.stdin:
                failed |= repl.execute(line) != 0
                if repl.done:
                    break
            return 2 if failed else 0
        history = Path(args.history).expanduser()
        history.parent.mkdir(parents=True, exist_ok=True)
        repl.print(f"Aegis REPL on {args.db}: `help` lists the commands, Tab completes, Ctrl-D quits")
        interact(repl, PromptSession(history=FileHistory(history), completer=ReplCompleter(store)))
        return 0
    finally:
        store.close()
