"""The autonomous loop as a user runs it: phases, crash safety, and champion/challenger."""

import os
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import aegis.improve
from aegis.improve import (
    ImproveConfig,
    improve_round,
    judge,
    learner_version,
    load_optimizer_state,
    modelled_envs,
    optimizer_path,
    settle,
)
from aegis.orchestrator import AgentConfig, Orchestrator
from aegis.registry import activate
from aegis.state import RlProgress, read_rl
from agent.oracle import OracleTeacher
from agent.policy import RandomPolicy
from agent.rl import RlConfig
from agent.runner import VectorRunner
from data.store import ExperienceStore
from tests.conftest import ROOT

SMALL = dict(distill_epochs=1, distill_hidden_size=32, distill_halt_max_steps=2, distill_batch_size=16,
             distill_min_examples=50, threshold=0.0, rl_rollout_decisions=64, rl_fit_steps=2)
"""A small student and a short RL round, as AgentConfig fields ..."""
FLAGS = [arg for key, value in SMALL.items() for arg in ("--" + key.replace("_", "-"), str(value))]
"""... and as start_training.py's options."""


def agent_cmd(tmp_path, *extra: str) -> list[str]:
    return [sys.executable, "start_training.py", "--db", str(tmp_path / "aegis.db"), "--out",
            str(tmp_path / "models"), "--teacher", "tiny", "--envs", "FrozenLake-v1", "--num-envs", "8",
            "--trigger", "200", "--rl-every", "4",
            "--eval-episodes", "2", *FLAGS, *extra]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_run_from_an_empty_store_goes_collect_distil_switch_improve(tmp_path):
    """Started from another folder with relative paths, as a user might: the distillation child finds the store."""
    cmd = agent_cmd(tmp_path, "--max-rl-updates", "1")
    cmd[1:6] = [str(ROOT / "start_training.py"), "--db", "aegis.db", "--out", "models"]
    result = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    store = ExperienceStore(tmp_path / "aegis.db")
    phases = [e.data["phase"] for e in reversed(store.events(limit=200, kind="phase"))]
    assert phases[:4] == ["collect", "distil", "switch", "improve"]
    kinds = {e.kind for e in store.events(limit=200)}
    assert {"train", "swap"} <= kinds and kinds & {"promote", "reject"}
    runs = {r.kind: r.status for r in store.training_runs()}
    assert runs == {"imitation": "succeeded", "rl": "succeeded"}
    assert sum(v.status == "active" for v in store.model_versions()) == 1
    hrm_decisions = [d for d in store.decisions() if d.policy.startswith("hrm:")]
    assert hrm_decisions and all(d.model_version is not None for d in hrm_decisions)
    rl = store.training_runs(kind="rl")[0]
    assert rl.metrics[0]["decisions"] >= 64  # the round's rollouts, recorded like any experience
    status = subprocess.run([sys.executable, "demo.py", "--db", str(tmp_path / "aegis.db"), "-c", "status"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    progress = read_rl(store)
    assert progress.rounds == 1 and progress.decisions >= 64
    assert f"1 rounds ({progress.accepted} accepted)" in status.stdout, status.stdout


@pytest.mark.slow
def test_a_paused_runner_records_nothing_while_distillation_runs(tmp_path):
    config = AgentConfig(db=str(tmp_path / "aegis.db"), out=str(tmp_path / "models"), teacher="tiny",
                         envs="FrozenLake-v1", num_envs=8, trigger=200, collect_while_distilling=False,
                         device="cpu", **SMALL)
    orch = Orchestrator(config)
    while orch.child is None:
        orch.step()
    at_start = orch.store.count_decisions()
    while orch.child is not None:
        orch.step()
    orch.step()
    after = [d.policy for d in orch.store.decisions()][at_start:]
    assert after and all(policy.startswith("hrm:v") for policy in after), "the teacher acted during distillation"
    assert orch.phase == "improve" and orch.runner.policy.name.startswith("hrm:v")


@pytest.mark.slow
def test_after_a_distillation_below_the_threshold_the_next_one_starts_from_its_student(tmp_path):
    config = AgentConfig(db=str(tmp_path / "aegis.db"), out=str(tmp_path / "models"), teacher="tiny",
                         envs="FrozenLake-v1", num_envs=8, trigger=200, device="cpu", distill_growth=3,
                         **{**SMALL, "threshold": 1.0})
    orch = Orchestrator(config)
    while len(orch.store.training_runs(kind="imitation")) < 2 or orch.child is not None:
        orch.step()
    second, first = orch.store.training_runs(kind="imitation")
    missed = orch.store.model_version(first.model_version_id)
    assert first.config["init_from"] is None and second.config["init_from"] == missed.checkpoint_path
    assert second.config["data_up_to"] > first.config["data_up_to"]  # on the decisions collected since, too
    starts = [e.message for e in reversed(orch.store.events(limit=100, kind="train")) if "started" in e.message]
    assert "fresh" in starts[0] and f"from {missed.checkpoint_path}" in starts[1]
    first_on, second_on = (int(re.search(r"started on (\d+) decisions", m).group(1)) for m in starts[:2])
    assert second_on >= 3 * first_on  # the store grew threefold (--distill-growth) before the second try
    assert orch.store.active_version() is None and orch.phase == "collect"


def wait_for(predicate, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sigkill_during_distillation_then_restart_continues_the_same_run(tmp_path):
    db = tmp_path / "aegis.db"
    # every row of a 12-epoch run (9 steps an epoch), a checkpoint every step
    long_run = ["--distill-epochs", "12", "--distill-patience", "12", "--no-distill-distinct",
                "--distill-checkpoint-minutes", "0.001"]
    agent = subprocess.Popen(agent_cmd(tmp_path, *long_run), cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: db.exists() and any(len(r.metrics) >= 2 for r in ExperienceStore(db).training_runs()),
                 300, "two epochs of distillation")
    finally:
        agent.send_signal(signal.SIGKILL)
        agent.wait()
    store = ExperienceStore(db)
    [killed] = store.training_runs(kind="imitation")
    killed_at = killed.metrics[-1]["step"]
    assert killed.status == "running" and len(killed.metrics) < 12  # killed mid-run
    before = store.count_decisions()
    kept = [(d.episode_id, d.step) for d in store.decisions()]

    restart = subprocess.run(agent_cmd(tmp_path, *long_run, "--max-rl-updates", "1"), cwd=ROOT,
                             capture_output=True, text=True, timeout=900)
    assert restart.returncode == 0, restart.stderr[-3000:]
    assert store.count_decisions() > before
    assert [(d.episode_id, d.step) for d in store.decisions()][:len(kept)] == kept  # nothing lost or rewritten
    assert sum(v.status == "active" for v in store.model_versions()) == 1
    [resumed] = store.training_runs(kind="imitation")  # the same run, not a new one
    assert resumed.id == killed.id and resumed.status == "succeeded"
    steps = [m["step"] for m in resumed.metrics]
    assert steps == sorted(steps) and steps[len(killed.metrics)] >= killed_at  # continued, not restarted
    version = store.model_version(resumed.model_version_id)
    assert version.metrics["train_decisions"] == killed.config["train_decisions"]  # on the data it started with


def test_a_stop_request_abandons_a_running_rl_round_at_once(tmp_path, make_checkpoint):
    config = AgentConfig(db=str(tmp_path / "aegis.db"), out=str(tmp_path / "models"), envs="FrozenLake-v1",
                         num_envs=2, rl_every=1, rl_rollout_decisions=1_000_000, eval_episodes=2)  # an endless round
    orch = Orchestrator(config)
    activate(orch.store, orch.store.add_model_version("imitation", make_checkpoint("student"), {}))
    orch.install_signal_handlers()
    orch.config.rl_every = 10**9  # no round while the student plays its first episode
    while not [e for e in orch.store.episodes(finished=True) if e.model_version is not None]:
        orch.step()
    orch.config.rl_every = 1
    timer = threading.Timer(3.0, os.kill, (os.getpid(), signal.SIGTERM))
    started = time.time()
    timer.start()
    try:
        orch._maybe_improve()
    finally:
        timer.cancel()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    assert orch.stop_requested and time.time() - started < 30
    [round_run] = orch.store.training_runs(kind="rl")
    assert round_run.status == "interrupted" and "asked to stop" in round_run.error
    assert read_rl(orch.store).rounds == 0 and orch.store.active_version().kind == "imitation"
    assert "abandoned" in orch.store.events(kind="rl")[0].message


def test_no_rl_round_starts_that_would_end_after_the_runs_duration(tmp_path, make_checkpoint, monkeypatch):
    config = AgentConfig(db=str(tmp_path / "aegis.db"), out=str(tmp_path / "models"), envs="FrozenLake-v1",
                         num_envs=2, rl_every=1, duration=600.0)
    orch = Orchestrator(config)
    activate(orch.store, orch.store.add_model_version("imitation", make_checkpoint("student"), {}))
    rounds = []
    monkeypatch.setattr("aegis.orchestrator.improve_round", lambda *args, **kwargs: rounds.append(args) or 1 / 0)
    orch.last_round_s = 900.0  # the last round took longer than the 600 s the run has left
    for _ in range(2000):  # until an episode the student began has ended (the first two began under the teacher)
        orch.step()
        if orch.store.events(kind="rl"):
            break
    assert not rounds and orch.run_episodes > 0  # the student acted on; no round was started
    assert "no more RL rounds" in orch.store.events(kind="rl")[0].message
    orch.last_round_s = 60.0
    with pytest.raises(ZeroDivisionError):  # a round that fits is started
        orch._maybe_improve()


def test_sigterm_finishes_the_step_and_exits_cleanly(tmp_path):
    db = tmp_path / "aegis.db"
    agent = subprocess.Popen(agent_cmd(tmp_path, "--trigger", "100000"), cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    wait_for(lambda: db.exists() and ExperienceStore(db).count_decisions() >= 16, 120, "two steps")
    agent.send_signal(signal.SIGTERM)
    _, err = agent.communicate(timeout=60)
    assert agent.returncode == 0, err[-2000:]
    assert "stopped cleanly" in err
    assert ExperienceStore(db).count_decisions() % 8 == 0  # whole steps only


def test_a_users_own_env_named_on_the_command_line_runs_and_is_stored(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests" / "aegis" / "user_envs")}
    cmd = [sys.executable, "start_training.py", "--db", str(tmp_path / "aegis.db"), "--teacher", "tiny", "--envs",
           "corridor_env:Corridor", "--num-envs", "2", "--max-decisions", "10"]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    decisions = list(ExperienceStore(tmp_path / "aegis.db").decisions())
    assert len(decisions) == 10 and {d.env for d in decisions} == {"corridor_env:Corridor"}
    assert {d.task_id for d in decisions} == {9} and "steps from the end" in decisions[0].observation
    bad = subprocess.run([*cmd[:7], "corridor_env:Nothing", *cmd[8:]], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env=env)
    assert bad.returncode == 2 and "cannot import 'Nothing'" in bad.stderr and "Traceback" not in bad.stderr


def test_one_seed_plays_the_same_episodes_from_an_empty_store_and_new_ones_when_a_run_resumes(tmp_path):
    def episode_seeds(db, steps: int = 30) -> list[int]:
        orch = Orchestrator(AgentConfig(db=str(db), out=str(tmp_path / "models"), envs="Taxi-v4", num_envs=2,
                                        teacher="oracle", seed=3))
        for _ in range(steps):
            orch.step()
        return [e.seed for e in sorted(orch.store.episodes(finished=None), key=lambda e: e.id)]

    first = episode_seeds(tmp_path / "a.db")
    assert episode_seeds(tmp_path / "b.db") == first  # a paired run: the same games in the same order
    resumed = episode_seeds(tmp_path / "a.db")  # the same store again: its new episodes are new draws
    assert len(resumed) > len(first) and not set(resumed[len(first):]) & set(first)


def test_bad_environment_name_is_one_line_and_exit_2(tmp_path):
    result = subprocess.run(agent_cmd(tmp_path, "--envs", "Pong-v5"), cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    assert "unknown environment 'Pong-v5'" in result.stderr and "Traceback" not in result.stderr


def test_a_long_text_env_gets_the_long_student_and_a_short_preset_is_refused(tmp_path):
    assert AgentConfig(envs="FrozenLake-v1,BabyAI-GoToLocal").student_preset() == "agent-29m"
    assert AgentConfig(envs="Taxi-v4,TextWorld-simple").student_preset() == "agent-29m-long"
    result = subprocess.run(agent_cmd(tmp_path, "--envs", "TextWorld-simple", "--distill-preset", "agent-29m"),
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "use --distill-preset agent-29m-long" in result.stderr.strip().splitlines()[-1]
    assert ExperienceStore(tmp_path / "aegis.db").count_decisions() == 0


def test_only_the_long_text_envs_distillation_gives_up_for_more_decisions_by_default():
    def give_up(config: AgentConfig) -> str:
        flags = config.distill_flags()
        return flags[flags.index("--give-up") + 1]

    assert give_up(AgentConfig(envs="FrozenLake-v1,Taxi-v4")) == "0"
    assert give_up(AgentConfig(envs="BabyAI-GoToLocal")) == "0"
    assert give_up(AgentConfig(envs="TextWorld-medium")) == "2"
    assert give_up(AgentConfig(envs="TextWorld-medium", distill_give_up=0)) == "0"
    assert give_up(AgentConfig(envs="Taxi-v4", distill_give_up=5)) == "5"


def test_a_long_text_env_collects_eight_times_the_decisions_after_a_miss_by_default():
    assert AgentConfig(envs="FrozenLake-v1,Taxi-v4").growth() == 2
    assert AgentConfig(envs="TextWorld-medium").growth() == 8
    assert AgentConfig(envs="TextWorld-medium", distill_growth=3).growth() == 3
    with pytest.raises(ValueError, match="--distill-growth must be > 1"):
        AgentConfig(distill_growth=1)


def test_only_the_long_students_distillation_drops_the_q_continue_segment_by_default():
    def continue_flag(config: AgentConfig) -> str:
        return next(flag for flag in config.distill_flags() if flag.endswith("continue-loss"))

    assert continue_flag(AgentConfig(envs="FrozenLake-v1,Taxi-v4")) == "--continue-loss"
    assert continue_flag(AgentConfig(envs="BabyAI-GoToLocal")) == "--continue-loss"
    assert continue_flag(AgentConfig(envs="TextWorld-medium")) == "--no-continue-loss"
    assert continue_flag(AgentConfig(envs="TextWorld-medium", distill_continue_loss="on")) == "--continue-loss"
    assert continue_flag(AgentConfig(envs="Taxi-v4", distill_continue_loss="off")) == "--no-continue-loss"


def test_one_precision_setting_reaches_distillation_rl_and_the_acting_slot(tmp_path):
    config = AgentConfig(db=str(tmp_path / "aegis.db"), precision="none")
    flags = config.distill_flags()
    assert flags[flags.index("--mixed-precision") + 1] == "none"
    assert config.rl_config().precision == "none"
    assert Orchestrator(config).slot.precision == "none"
    assert AgentConfig(db=str(tmp_path / "aegis.db")).rl_config().precision == "auto"


def test_judge_rejects_a_worse_challenger_and_accepts_an_equal_one():
    config = ImproveConfig(eval_episodes=30)
    worse = judge(OracleTeacher(seed=0), RandomPolicy(seed=0), ["Taxi-v4"], config)
    assert not worse["accepted"] and worse["Taxi-v4"]["challenger"] < worse["Taxi-v4"]["champion"]
    same = judge(OracleTeacher(seed=0), OracleTeacher(seed=1), ["Taxi-v4"], config)
    assert same["accepted"] and np.isclose(same["Taxi-v4"]["difference"], 0.0)


def test_judge_rejects_a_challenger_level_with_its_champion_but_below_where_rl_started():
    # a line of rounds each within noise of the one before must not drift below the distilled version
    config = ImproveConfig(eval_episodes=30)
    level = judge(RandomPolicy(seed=0), RandomPolicy(seed=1), ["Taxi-v4"], config)
    assert level["accepted"]
    drifted = judge(RandomPolicy(seed=0), RandomPolicy(seed=1), ["Taxi-v4"], config, reference=OracleTeacher(seed=0))
    assert not drifted["accepted"] and drifted["Taxi-v4"]["below_reference"]
    assert drifted["Taxi-v4"]["difference"] == 0.0 and drifted["Taxi-v4"]["reference"] > drifted["Taxi-v4"]["champion"]
    assert judge(RandomPolicy(seed=0), OracleTeacher(seed=1), ["Taxi-v4"], config, reference=OracleTeacher(seed=0)
                 )["accepted"]  # back at the start: no bar to clear


def test_where_the_text_is_not_the_state_the_judge_plays_as_the_agent_acts():
    # greedy, a uniform policy turns left forever; sampled, as the agent acts, it finds the red ball in some levels.
    # The dice are each episode's, not the policy's: two policies with the same probabilities play the same episodes.
    report = judge(RandomPolicy(seed=0), RandomPolicy(seed=1), ["BabyAI-GoToRedBall"], ImproveConfig(eval_episodes=20))
    assert not report["BabyAI-GoToRedBall"]["greedy"] and report["BabyAI-GoToRedBall"]["champion"] > 0
    assert report["BabyAI-GoToRedBall"]["difference"] == 0.0 and report["accepted"]
    assert judge(RandomPolicy(), RandomPolicy(), ["Taxi-v4"], ImproveConfig(eval_episodes=2))["Taxi-v4"]["greedy"]


def test_the_auto_critic_models_the_envs_whose_text_is_their_state_and_uses_gae_for_partial_views():
    envs = ["FrozenLake-v1", "BabyAI-GoToLocal", "Taxi-v4"]
    assert modelled_envs(envs, "auto") == ["FrozenLake-v1", "Taxi-v4"]
    assert modelled_envs(envs, "model") == envs and modelled_envs(envs, "gae") == []


class Split:
    """The oracle in one env, uniform random in the others."""

    version = None

    def __init__(self, good_in: str):
        self.good_in, self.name = good_in, f"oracle in {good_in}"
        self.oracle, self.random = OracleTeacher(seed=0), RandomPolicy(seed=0)

    def decide(self, observations, greedy=False):
        return [(self.oracle if o.env_name == self.good_in else self.random).decide([o], greedy)[0]
                for o in observations]


def test_judge_rejects_a_candidate_that_buys_a_gain_in_one_env_with_a_loss_in_another():
    envs = ["FrozenLake-v1", "Taxi-v4"]
    report = judge(Split("FrozenLake-v1"), Split("Taxi-v4"), envs, ImproveConfig(eval_episodes=40))
    assert report["Taxi-v4"]["challenger"] - report["Taxi-v4"]["champion"] > 100  # a large gain in Taxi ...
    assert report["FrozenLake-v1"]["worse"] and not report["Taxi-v4"]["worse"]  # ... bought with FrozenLake
    assert not report["accepted"]


def test_a_rejected_candidate_leaves_the_champion_active(tmp_path, make_checkpoint):
    store = ExperienceStore(tmp_path / "aegis.db")
    champion = store.add_model_version("imitation", make_checkpoint("champion"), {})
    activate(store, champion)
    challenger = store.add_model_version("rl", make_checkpoint("challenger", seed=1), {}, parent_id=champion)
    report = {"Taxi-v4": {"champion": 7.5, "challenger": -80.0, "worse": True}, "accepted": False}
    settle(store, store.active_version(), challenger, report, ["Taxi-v4"])
    assert store.active_version().id == champion
    assert store.model_version(challenger).status == "rejected"
    assert "rejected" in store.events(kind="reject")[0].message
    assert os.path.exists(store.model_version(champion).checkpoint_path)


def test_rl_rounds_continue_the_fit_optimizer_and_keep_only_the_active_versions_state(tmp_path, make_checkpoint):
    store = ExperienceStore(tmp_path / "aegis.db")
    activate(store, store.add_model_version("imitation", make_checkpoint("student"), {}))
    config = ImproveConfig(rl=RlConfig(rollout_decisions=32, fit_steps=3, value_epochs=1), eval_episodes=2,
                           noise=float("inf"), out=str(tmp_path / "models"))  # every candidate is accepted
    for round_index in range(2):
        report = improve_round(store, store.active_version(), ["FrozenLake-v1"], config, round_index)
        assert report["accepted"]
        state = load_optimizer_state(store.active_version().checkpoint_path)
        assert {int(s["step"]) for s in state["state"].values()} == {3 * (round_index + 1)}  # Adam went on
    kept = sorted((tmp_path / "models").glob("*.optim.pt"))
    assert kept == [optimizer_path(store.active_version().checkpoint_path)]


def _collect(store: ExperienceStore, policy, steps: int) -> None:
    runner = VectorRunner(["FrozenLake-v1"] * 8, store, policy, seed=0)
    for _ in range(steps):
        runner.step()


def test_a_round_asks_a_teacher_that_plays_better_and_never_one_that_does_not(tmp_path, make_checkpoint):
    store = ExperienceStore(tmp_path / "aegis.db")
    activate(store, store.add_model_version("imitation", make_checkpoint("student"), {}))
    config = ImproveConfig(rl=RlConfig(rollout_decisions=400, fit_steps=2, value_epochs=1, kickstart=0.5),
                           eval_episodes=2, out=str(tmp_path / "models"))
    oracle, idle = OracleTeacher(), RandomPolicy(seed=1)
    _collect(store, oracle, 100)  # the oracle wins ~0.7 of FrozenLake's episodes, the untrained student ~0.01 ...
    _collect(store, idle, 100)  # ... as does a uniform random teacher
    asked = []
    idle.decide = lambda observations, greedy=False: asked.append(observations) or 1 / 0
    report = improve_round(store, store.active_version(), ["FrozenLake-v1"], config, 0, teacher=idle)
    assert not asked and report["taught_rows"] == 0.0 and "teacher_agreement" not in report
    assert "demonstrations" not in report
    assert abs(report["FrozenLake-v1/teacher_edge"]) < 0.1
    report = improve_round(store, store.active_version(), ["FrozenLake-v1"], config, 1, teacher=oracle)
    assert report["FrozenLake-v1/teacher_edge"] > 0.3 and report["taught_rows"] == 1.0
    assert 0.0 <= report["teacher_agreement"] <= 1.0
    assert report["teacher_s"] > 0
    assert report["demonstrations"] == store.count_decisions(env="FrozenLake-v1", policy="oracle")  # DAgger's aggregate


def test_a_champion_is_played_on_the_evaluation_seeds_once_however_many_rounds_judge_it(tmp_path, make_checkpoint,
                                                                                          monkeypatch):
    store = ExperienceStore(tmp_path / "aegis.db")
    activate(store, store.add_model_version("imitation", make_checkpoint("student"), {}))
    played = []
    real = aegis.improve.episode_returns
    monkeypatch.setattr("aegis.improve.episode_returns",
                        lambda policy, *args: played.append(policy.version) or real(policy, *args))
    config = ImproveConfig(rl=RlConfig(rollout_decisions=32, fit_steps=1, value_epochs=1), eval_episodes=4,
                           noise=-float("inf"), out=str(tmp_path / "models"))  # every candidate is rejected
    played_returns, champion = {}, store.active_version()
    reports = [improve_round(store, champion, ["FrozenLake-v1"], config, i, played=played_returns)
               for i in range(3)]
    assert played == [champion.id] + [r["version"] for r in reports]  # the champion once, each challenger once
    assert len({r["FrozenLake-v1"]["champion"] for r in reports}) == 1


def test_a_rejected_candidate_is_trained_on_while_the_champion_stays_served(tmp_path, make_checkpoint, monkeypatch):
    store = ExperienceStore(tmp_path / "aegis.db")
    activate(store, store.add_model_version("imitation", make_checkpoint("student"), {}))
    champion = store.active_version()
    config = ImproveConfig(rl=RlConfig(rollout_decisions=32, fit_steps=3, value_epochs=1), eval_episodes=2,
                           out=str(tmp_path / "models"))
    verdict = {"champion": 0.5, "challenger": 0.0, "difference": -0.5, "stderr": 0.1, "worse": True}
    monkeypatch.setattr("aegis.improve.judge", lambda *_: {"FrozenLake-v1": verdict, "accepted": False})
    progress, learner = RlProgress(), champion
    for round_index in range(3):
        report = improve_round(store, champion, ["FrozenLake-v1"], config, round_index, learner=learner)
        assert not report["accepted"] and store.active_version().id == champion.id  # the served version is gated
        candidate = store.model_version(report["version"])
        assert candidate.parent_id == learner.id  # trained from the learner, not from the champion
        state = load_optimizer_state(candidate.checkpoint_path)
        assert {int(s["step"]) for s in state["state"].values()} == {3 * (round_index + 1)}  # its Adam went on
        restarted = progress.settle_learner(candidate.id, accepted=False, patience=3)
        assert restarted == (round_index == 2)  # three rejected in a row: back to the champion
        learner = learner_version(store, progress.learner, champion)
        assert learner.id == (champion.id if restarted else candidate.id)
    kept = sorted((tmp_path / "models").glob("*.optim.pt"))  # the learner's Adam state moved on with it
    assert kept == [optimizer_path(candidate.checkpoint_path)]


def test_a_learner_that_does_not_descend_from_the_active_version_is_dropped(tmp_path, make_checkpoint):
    store = ExperienceStore(tmp_path / "aegis.db")
    first = store.add_model_version("imitation", make_checkpoint("first"), {})
    rejected = store.add_model_version("rl", make_checkpoint("rejected", seed=1), {}, parent_id=first)
    activate(store, first)
    assert learner_version(store, rejected, store.active_version()).id == rejected
    activate(store, store.add_model_version("imitation", make_checkpoint("second", seed=2), {}))  # a new distillation
    assert learner_version(store, rejected, store.active_version()).id == store.active_version().id
    assert learner_version(store, None, store.active_version()).id == store.active_version().id


@pytest.mark.slow
def test_switch_in_the_repl_is_picked_up_by_a_running_agent(tmp_path, make_checkpoint):
    db = tmp_path / "aegis.db"
    store = ExperienceStore(db)
    version = store.add_model_version("imitation", make_checkpoint("student"), {"agreement": 0.9})
    agent = subprocess.Popen(agent_cmd(tmp_path, "--trigger", "100000", "--rl-every", "100000"), cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: store.count_decisions() >= 16, 120, "the teacher acting")
        switch = subprocess.run([sys.executable, "demo.py", "--db", str(db), "-c", f"switch {version}"], cwd=ROOT,
                                capture_output=True, text=True, timeout=120)
        assert switch.returncode == 0, switch.stderr
        wait_for(lambda: any(d.policy == f"hrm:v{version}" for d in store.decisions()), 120, "the agent's swap")
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.communicate(timeout=60)
    assert agent.returncode == 0
    swaps = store.events(kind="swap")
    assert swaps and f"hrm:v{version}" in swaps[0].message
