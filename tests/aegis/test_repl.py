"""The REPL (demo.py): every command on a prepared store, bad input as one-line hints, a prompt session, demo.py."""

import io
import os
import re
import shutil
import sqlite3
import subprocess
import sys

import pytest
import torch
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from prompt_toolkit.shortcuts import PromptSession
from rich.console import Console

from aegis.registry import activate
from aegis.repl import COMMANDS, Repl, ReplCompleter, interact, main
from aegis.state import RlProgress, write_rl
from aegis.views import progress_bar, sparkline
from agent.envs import make_env
from agent.envs.blackjack import Blackjack
from agent.policy import RandomPolicy
from agent.runner import VectorRunner
from data.store import ExperienceStore
from hrm import Hrm, TrainConfig, Trainer
from tests.aegis.conftest import tiny_student_config
from tests.conftest import ROOT

EVAL_LOSS = [1.5, 0.75, 0.5, 0.375]


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A store as a running agent leaves it: random-policy episodes, two candidate versions (v2's parent is v1), a
    finished imitation run and a running RL run with metrics, orchestrator state and events. Built once per module
    (checkpoints take seconds on two cores); each test works on a copy."""
    folder = tmp_path_factory.mktemp("template")
    store = ExperienceStore(folder / "aegis.db")
    VectorRunner(["FrozenLake-v1", "Taxi-v4"], store, RandomPolicy(seed=0), seed=0).run(max_decisions=600)
    checkpoints = []
    for seed in (0, 1):  # what the make_checkpoint fixture writes, once for the module
        torch.manual_seed(seed)
        checkpoints.append(Trainer(Hrm(tiny_student_config()), TrainConfig(total_steps=1), "cpu")
                           .save(folder / f"v{seed + 1}.pt"))
    v1 = store.add_model_version("imitation", checkpoints[0], {"agreement": 0.74, "loss": 0.61})
    store.add_model_version("rl", checkpoints[1], {"agreement": 0.81, "mean_return": 0.4}, parent_id=v1)
    run = store.start_training_run("imitation", {"epochs": 4})
    for epoch, loss in enumerate(EVAL_LOSS, 1):
        store.add_run_metrics(run, {"epoch": float(epoch), "step": 10 * epoch, "eval_loss": loss,
                                    "eval_agreement": 0.5 + 0.08 * epoch})
    store.finish_training_run(run, "succeeded", model_version_id=v1)
    rl_run = store.start_training_run("rl", {"epochs": 10})
    store.add_run_metrics(rl_run, {"epoch": 3, "eval_agreement": 0.8, "eval_loss": 0.7})
    store.set_state("phase", "improve")
    store.set_state("teacher", "tiny")
    store.set_state("envs", ["FrozenLake-v1", "Taxi-v4"])
    write_rl(store, RlProgress(rounds=3, accepted=1, episodes=42, decisions=900, last={"mean_return": 0.25}))
    store.log_event("phase", "collect → distil [after 1,100 decisions]")
    store.log_event("train", "distillation run 1 → version 1")
    store.close()
    return folder / "aegis.db"


@pytest.fixture
def db(template, tmp_path):
    """A fresh copy of the prepared store."""
    copy = tmp_path / "aegis.db"
    shutil.copy(template, copy)
    return copy


@pytest.fixture(autouse=True)
def wide(monkeypatch):
    """Rich lays tables out for 200 columns, so no cell wraps."""
    monkeypatch.setenv("COLUMNS", "200")


def demo(capsys, db, command: str) -> tuple[int, str, str]:
    """Runs `demo.py --db DB -c COMMAND` in this process; returns (exit code, stdout, stderr)."""
    code = main(["--db", str(db), "-c", command, "--seed", "0", "--device", "cpu"])
    out, err = capsys.readouterr()
    return code, out, err


def session_repl(store: ExperienceStore) -> tuple[Repl, io.StringIO]:
    """Returns a Repl printing into a buffer (errors too, as in a prompt session) and the buffer."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=200)
    return Repl(store, console, console, device="cpu", seed=0), buffer


def test_status_reports_phase_decisions_acting_policy_training_and_rl(db, capsys, tmp_path):
    code, out, _ = demo(capsys, db, "status")
    decisions = ExperienceStore(db).count_decisions()
    assert code == 0
    assert re.search(r"phase\s+improve", out)
    assert "teacher tiny (no active model)" in out
    assert f"{decisions:,} (random {decisions:,})" in out
    assert "run 2 rl running" in out and "3/10" in out and "agreement 80.0%" in out
    assert "3 rounds (1 accepted), 42 episodes, 900 decisions; last: mean_return 0.25" in out

    store = ExperienceStore(db)
    write_rl(store, RlProgress(rounds=5, accepted=1, learner=7, rejected_in_row=2))
    code, out, _ = demo(capsys, db, "status")
    assert "training on from rejected v7 (2 rejected in a row)" in out

    ExperienceStore(tmp_path / "empty.db").close()
    code, out, _ = demo(capsys, tmp_path / "empty.db", "status")
    assert code == 0
    assert "not started" in out and "no training run yet" in out and re.search(r"RL\s+not started", out)


def test_training_shows_progress_sparklines_and_per_epoch_metrics(db, capsys):
    code, out, _ = demo(capsys, db, "training")
    assert code == 0
    assert any(line.startswith("run 2 rl running") for line in out.splitlines())  # the running run, in detail
    code, out, _ = demo(capsys, db, "training 1")
    assert code == 0
    assert "run 1 imitation succeeded" in out and "4/4" in out and "→ version 1" in out
    assert f"eval_loss       {sparkline(EVAL_LOSS)}  1.5 → 0.375" in out and sparkline(EVAL_LOSS) == "█▃▂▁"
    assert re.search(r"│ 4\s+│ 40\s+│ 0\.375\s+│ 82\.0%", out)  # epoch, step, eval_loss, eval_agreement


def test_models_lists_versions_with_status_parent_and_metrics(db, capsys):
    code, out, _ = demo(capsys, db, "models")
    assert code == 0
    assert re.search(r"│ 2\s+│ rl\s+│ candidate\s+│ 1\s+│ —\s+│ 81\.0%\s+│ mean_return 0\.4", out)
    assert re.search(r"│ 1\s+│ imitation\s+│ candidate\s+│ —", out)


def test_episodes_filters_by_env_and_reports_mean_returns_per_policy(db, capsys):
    store = ExperienceStore(db)
    code, out, _ = demo(capsys, db, "episodes frozenlake-v1 3")
    assert code == 0
    shown = [int(m) for m in re.findall(r"^│ (\d+)\s+│ FrozenLake-v1", out, re.MULTILINE)]
    assert shown[:3] == [e.id for e in store.episodes(env="FrozenLake-v1", limit=3)] and len(shown) == 3
    [row] = [r for r in store.summary() if r.env == "FrozenLake-v1"]
    assert re.search(rf"│ FrozenLake-v1\s+│ random\s+│ {row.episodes}\s+│ {row.decisions}\s+│", out)
    assert "Taxi-v4" not in out


def test_switch_and_rollback_change_the_active_version_and_log_it(db, capsys):
    store = ExperienceStore(db)
    code, out, _ = demo(capsys, db, "switch v2")
    assert code == 0 and "version 2 is active (was the teacher)" in out
    assert store.active_version().id == 2
    assert demo(capsys, db, "switch 1")[0] == 0 and store.active_version().id == 1
    code, out, _ = demo(capsys, db, "status")
    assert "hrm:v1 — version 1 (imitation, held-out agreement 74.0%)" in out
    code, out, _ = demo(capsys, db, "rollback")
    assert code == 0 and "version 2 is active again (version 1 retired)" in out
    assert store.active_version().id == 2
    code, out, err = demo(capsys, db, "rollback")
    assert code == 2 and err.strip() == "version 2 replaced no other version; nothing to roll back to"
    code, _, err = demo(capsys, db, "switch 9")
    assert code == 2 and err.strip() == "there is no model version 9; `models` lists them"
    assert [e.kind for e in store.events(limit=3)] == ["rollback", "switch", "switch"]


def test_decide_shows_the_observation_each_actions_probability_and_the_choice(db):
    store = ExperienceStore(db)
    decisions = store.count_decisions()
    repl, buffer = session_repl(store)
    assert repl.execute("decide FrozenLake-v1 3") == 0  # no active version: the tiny GPT-2 teacher acts
    out = buffer.getvalue()
    env = make_env("FrozenLake-v1")
    env.reset(seed=3)
    assert env.observation_text() in out and "gpt2:tiny at step 0 of FrozenLake-v1" in out
    rows = re.findall(r"│ (\w+)\s+│ ([01]\.\d{3})\s+│ (█*)(  ← chosen)?", out)
    assert [r[0] for r in rows] == env.legal_actions()
    probs = [float(r[1]) for r in rows]
    assert sum(probs) == pytest.approx(1.0, abs=0.01)
    [chosen] = [i for i, r in enumerate(rows) if r[3]]
    assert probs[chosen] == max(probs)
    assert repl.execute("decide frozenlake-v1") == 0  # the same episode goes on
    assert "at step 1 of FrozenLake-v1" in buffer.getvalue()
    assert store.count_decisions() == decisions  # decide only looks


def test_run_plays_whole_episodes_with_the_active_model_and_records_them(db, capsys):
    store = ExperienceStore(db)
    activate(store, 1)
    open_before = len(store.episodes(finished=False))
    code, out, _ = demo(capsys, db, "run Blackjack-v1 4")
    assert code == 0
    played = store.episodes(env="Blackjack-v1")
    assert len(played) == 4 and {(e.policy, e.model_version) for e in played} == {("hrm:v1", 1)}
    assert len(store.episodes(finished=False)) == open_before  # every episode it opened is finished
    mean = sum(e.episode_return for e in played) / 4
    success = sum(bool(e.success) for e in played) / 4
    assert f"4 episodes with hrm:v1 (greedy): mean return {mean:.4g}" in out and f"success {success:.0%}" in out
    assert sum(e.length for e in played) == store.count_decisions(env="Blackjack-v1")



def test_a_policy_that_cannot_load_or_act_gets_one_line_and_opens_no_episode(db, capsys, monkeypatch, tmp_path):
    store = ExperienceStore(db)
    store.set_state("teacher", "gpt2-nowhere")
    code, _, err = demo(capsys, db, "decide Taxi-v4")
    assert code == 2 and err.startswith("cannot load the acting policy (teacher 'gpt2-nowhere'): GPT-2 weights")
    assert len(err.strip().splitlines()) == 1

    store.set_state("teacher", "oracle")
    monkeypatch.setattr(Blackjack, "optimal_q", lambda self, state: None)  # an env without known optimal values
    code, _, err = demo(capsys, db, "run Blackjack-v1 2")
    assert code == 2 and err == "oracle cannot act in Blackjack-v1: Blackjack-v1 has no optimal Q-values, so the " \
        "oracle cannot act in it\n"
    assert not store.episodes(env="Blackjack-v1", finished=None)

    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"\x00not a checkpoint")
    store.activate_version(store.add_model_version("imitation", broken))  # bypasses the registry's load check
    code, _, err = demo(capsys, db, "decide Taxi-v4")
    assert code == 2 and err.startswith("cannot load the acting policy (version 3): ") and err.count("\n") == 1


def test_events_lists_the_newest_first(db, capsys):
    code, out, _ = demo(capsys, db, "events 1")
    assert code == 0 and "distillation run 1 → version 1" in out and "collect → distil" not in out
    code, out, _ = demo(capsys, db, "events")
    assert out.index("distillation run 1") < out.index("collect → distil [after 1,100 decisions]")


def test_help_lists_every_command_and_one_commands_usage(db):
    repl, buffer = session_repl(ExperienceStore(db))
    assert repl.execute("help") == 0
    assert all(command.usage in buffer.getvalue() for command in COMMANDS.values())
    assert repl.execute("help RUN") == 0
    assert buffer.getvalue().splitlines()[-1].startswith("run ENV [N] — play N episodes (10, at most 1000)")


@pytest.mark.parametrize("line, hint", [
    ("bogus", "unknown command 'bogus'; `help` lists the commands"),
    ("stauts", "did you mean `status`?"),
    ("__import__('os').system('true')", "unknown command"),
    ("episodes 0", "N must be a whole number from 1 to 1000, got '0'; usage: episodes [ENV] [N]"),
    ("run Taxi-v4 1001", "usage: run ENV [N]"),
    ("run Nowhere-v0", "unknown environment 'Nowhere-v0'; choose one of: FrozenLake-v1, FrozenLake-v1-8x8"),
    ("decide", "wrong number of arguments; usage: decide ENV [SEED]"),
    ("switch latest", "'latest' is not a version id"),
    ("models please", "wrong number of arguments; usage: models"),
    ("training 99", "there is no training run 99"),
    ('status "unclosed', "cannot split the line into words"),
    ("help nothing", "unknown command 'nothing'"),
])
def test_bad_input_gets_a_one_line_hint(db, line, hint):
    repl, buffer = session_repl(ExperienceStore(db))
    assert repl.execute(line) == 2
    out = buffer.getvalue()
    assert hint in out and len(out.strip().splitlines()) == 1 and "Traceback" not in out


def test_the_repl_reads_while_the_agent_writes_and_holds_nothing_open(db):
    store = ExperienceStore(db)
    repl, buffer = session_repl(store)
    agent = sqlite3.connect(db, timeout=0.5, isolation_level=None)
    agent.execute("BEGIN IMMEDIATE")  # the agent is in the middle of a write transaction
    agent.execute("INSERT INTO events (time, kind, message, data) "
                  "VALUES ('2030-01-01 00:00:00.000000', 'phase', 'uncommitted', '{}')")
    assert repl.execute("status") == 0 and repl.execute("events") == 0 and "uncommitted" not in buffer.getvalue()
    agent.execute("COMMIT")
    assert repl.execute("events 1") == 0 and "uncommitted" in buffer.getvalue()
    busy, _, _ = agent.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    assert busy == 0  # the idle REPL holds no transaction: the WAL can be checkpointed


def test_a_prompt_session_runs_commands_until_quit(db, tmp_path):
    store = ExperienceStore(db)
    repl, buffer = session_repl(store)
    history = tmp_path / "history"
    with create_pipe_input() as pipe:
        pipe.send_text("status\nmodels\nbogus\nquit\nevents\n")
        interact(repl, PromptSession(input=pipe, output=DummyOutput(), history=FileHistory(history),
                                     completer=ReplCompleter(store)))
    out = buffer.getvalue()
    assert "phase" in out and "model versions" in out
    assert "unknown command 'bogus'; `help` lists the commands" in out
    assert "events (newest first)" not in out  # quit ended the session
    assert [line for line in history.read_text().splitlines() if line.startswith("+")] == [
        "+status", "+models", "+bogus", "+quit"]

    repl, buffer = session_repl(store)
    with create_pipe_input() as pipe:
        pipe.send_text("events 1\n\x04")  # Ctrl-D on an empty line leaves
        interact(repl, PromptSession(input=pipe, output=DummyOutput()))
    assert "distillation run 1" in buffer.getvalue()


def test_tab_completes_commands_envs_and_version_ids(db):
    completer = ReplCompleter(ExperienceStore(db))

    def complete(text: str) -> list[str]:
        return [c.text for c in completer.get_completions(Document(text), CompleteEvent(completion_requested=True))]

    assert complete("sw") == ["switch"]
    assert complete("run froz") == ["FrozenLake-v1", "FrozenLake-v1-8x8"]
    assert complete("switch ") == ["2", "1"]
    assert complete("help ro") == ["rollback"]
    assert complete("models ") == []


def test_sparkline_and_progress_bar():
    assert sparkline(range(8)) == "▁▂▃▄▅▆▇█" and sparkline([7, 0]) == "█▁"
    assert sparkline([0.5, None, float("nan"), 0.5]) == "▄▄"
    assert sparkline([]) == ""
    assert progress_bar(5, 10, width=10) == "█████░░░░░ 5/10"
    assert progress_bar(12, 10, width=4) == "████ 12/10"


def run_demo(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "demo.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          input=stdin, env={**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"})


def test_demo_py_runs_one_command_or_piped_commands_and_fails_in_one_line(db, tmp_path):
    result = run_demo("--db", str(db), "-c", "status")
    assert result.returncode == 0 and re.search(r"phase\s+improve", result.stdout), result.stderr
    result = run_demo("--db", str(db), "-c", "bogus")
    assert result.returncode == 2 and result.stderr == "unknown command 'bogus'; `help` lists the commands\n"
    result = run_demo("--db", str(tmp_path / "missing.db"), "-c", "status")
    assert result.returncode == 2 and "there is no experience store at" in result.stderr
    assert len(result.stderr.splitlines()) == 1 and not (tmp_path / "missing.db").exists()
    result = run_demo("--db", str(db), stdin="models\nquit\nstatus\n")
    assert result.returncode == 0 and "model versions" in result.stdout and "phase" not in result.stdout
