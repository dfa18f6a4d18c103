"""Minari export: every step of every exported episode comes back from `minari.load_dataset`, offline."""

import minari
import numpy as np
import pytest

from aegis.export_minari import MinariArgs, export_minari, main
from agent.oracle import OracleTeacher
from agent.runner import VectorRunner
from data.store import ExperienceStore


@pytest.mark.parametrize("env", ["FrozenLake-v1", "Taxi-v4"])
def test_a_round_trip_keeps_every_step_of_the_exported_episodes(env, tmp_path, monkeypatch):
    store = ExperienceStore(tmp_path / "aegis.db")
    VectorRunner(["FrozenLake-v1", "Taxi-v4"] * 2, store, OracleTeacher(epsilon=0.5, seed=0), seed=0).run(
        max_episodes=16)
    written = export_minari(store, MinariArgs(env=env, db=str(tmp_path / "aegis.db"), policy="oracle:0.5",
                                              datasets_path=str(tmp_path / "datasets")))
    assert written.spec.dataset_id == f"aegis/{env.lower()}-oracle-0-5-v0"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "datasets"))
    dataset = minari.load_dataset(written.spec.dataset_id)  # offline: from the folder, nothing downloaded
    stored = sorted(store.episodes(env=env), key=lambda e: e.id)
    assert dataset.total_episodes == len(stored) > 0
    for episode, data in zip(stored, dataset.iterate_episodes(), strict=True):
        decisions = sorted(store.decisions(episode_ids=[episode.id]), key=lambda d: d.step)
        assert data.observations[:-1] == [d.observation for d in decisions]
        assert len(data.observations) == len(decisions) + 1
        assert data.actions.tolist() == [d.chosen for d in decisions]
        np.testing.assert_allclose(data.rewards, [d.reward for d in decisions])
        assert data.terminations.tolist() == [d.terminated for d in decisions]
        assert data.truncations.tolist() == [d.truncated for d in decisions]
        assert float(np.sum(data.rewards)) == pytest.approx(episode.episode_return)
    metadata = dataset.storage.get_episode_metadata(range(len(stored)))
    assert [m["seed"] for m in metadata] == [e.seed for e in stored]  # each episode replays from its reset seed


def test_an_env_without_episodes_is_one_line_and_exit_2(tmp_path, capsys):
    ExperienceStore(tmp_path / "aegis.db").close()
    code = main(["--db", str(tmp_path / "aegis.db"), "--env", "Taxi-v4", "--datasets-path", str(tmp_path / "d")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "no finished Taxi-v4 episodes" in err
