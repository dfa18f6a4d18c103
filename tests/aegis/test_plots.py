"""Learning-curve pictures: the panels a person reads, built from a store the real writers filled."""

import re

from rich.console import Console

from aegis.plots import learning_curves
from aegis.repl import Repl
from agent.oracle import OracleTeacher
from agent.policy import RandomPolicy
from agent.runner import VectorRunner
from data.store import ExperienceStore

ENVS = ["FrozenLake-v1", "Taxi-v4"]


def hrm_stand_in(version: int) -> RandomPolicy:
    """A policy that records its decisions as model version `version` acting (what the store sees of an HRM)."""
    policy = RandomPolicy(seed=version)
    policy.name, policy.version = f"hrm:v{version}", version
    return policy


def store_with_a_whole_run(path) -> ExperienceStore:
    """Teacher episodes, a distillation run, the swap to v1, its episodes, and two RL rounds (one accepted)."""
    store = ExperienceStore(path)
    VectorRunner(ENVS * 2, store, OracleTeacher(epsilon=0.5, seed=0), seed=0).run(max_episodes=20)
    run = store.start_training_run("imitation", {"epochs": 3})
    for epoch in (1, 2, 3):
        store.add_run_metrics(run, {"epoch": epoch, "lm_loss": 2.0 / epoch, "eval_agreement": 0.3 * epoch})
    v1 = store.add_model_version("imitation", "v1.pt", {"agreement": 0.9})
    store.finish_training_run(run, "succeeded", model_version_id=v1)
    store.activate_version(v1)
    store.log_event("swap", "oracle:0.5 → hrm:v1", version=v1)
    VectorRunner(ENVS * 2, store, hrm_stand_in(v1), seed=1).run(max_decisions=1000)  # Taxi ends at 200 steps
    for accepted in (True, False):
        rl = store.start_training_run("rl", {})
        version = store.add_model_version("rl", "rl.pt", {}, parent_id=v1)
        store.add_run_metrics(rl, {"accepted": float(accepted), **{f"{env}/{side}": value for env in ENVS for side,
                                   value in (("champion", -100.0), ("challenger", -50.0))}})
        store.finish_training_run(rl, "succeeded", model_version_id=version)
        store.log_event("promote" if accepted else "reject", f"RL version {version}", version=version)
        if accepted:
            store.activate_version(version)
            VectorRunner(ENVS * 2, store, hrm_stand_in(version), seed=2).run(max_decisions=1000)
    return store


def test_the_picture_has_the_returns_of_each_policy_the_marks_the_optimum_and_the_training_panels(tmp_path):
    figure = learning_curves(store_with_a_whole_run(tmp_path / "aegis.db"))
    returns = [ax for ax in figure.axes if ax.get_title().endswith("(rolling mean of 50, ±1 sd)")]
    assert [ax.get_title().split(":")[0] for ax in returns] == ENVS
    for ax in returns:
        labels = ax.get_legend_handles_labels()[1]
        assert {"teacher", "distilled HRM", "HRM after RL", "swap", "RL promoted", "RL rejected"} <= set(labels)
        assert any(re.fullmatch(r"optimum -?[\d.]+", label) for label in labels)
        assert ax.get_xlabel() == "decisions" and ax.get_ylabel() == "return"
    [distillation] = [ax for ax in figure.axes if ax.get_title().startswith("distillation")]
    assert [len(line.get_xdata()) for line in distillation.get_lines()] == [3]  # the loss per epoch
    [rl] = [ax for ax in figure.axes if ax.get_title().startswith("RL rounds")]
    assert {"Taxi-v4 accepted", "Taxi-v4 rejected", "FrozenLake-v1 champion"} <= set(rl.get_legend_handles_labels()[1])


def test_plot_in_the_repl_writes_a_png_and_prints_its_path(tmp_path):
    store = store_with_a_whole_run(tmp_path / "aegis.db")
    console = Console(record=True, width=200)
    assert Repl(store, console, console).execute("plot taxi") == 0
    [path] = (tmp_path / "plots").glob("curves-*.png")
    assert path.stat().st_size > 10_000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(path) in console.export_text()
