"""The vectorised runner: lockstep steps, one transaction per step, returns that replay exactly."""

import pytest

from agent.envs import make_env
from agent.policy import RandomPolicy
from agent.runner import VectorRunner
from data.store import ExperienceStore


@pytest.fixture
def store(tmp_path):
    return ExperienceStore(tmp_path / "aegis.db")


def test_stored_returns_are_the_envs_own_rewards_and_replay_from_the_recorded_seed(store):
    runner = VectorRunner(["FrozenLake-v1", "Taxi-v4", "FrozenLake-v1", "Taxi-v4"], store, RandomPolicy(seed=3),
                          seed=11)
    finished = runner.run(max_episodes=8)
    assert len(finished) >= 8
    episodes = {e.id: e for e in store.episodes()}
    for done in finished:
        episode = episodes[done.episode_id]
        decisions = list(store.decisions(episode_ids=[done.episode_id]))
        assert [d.step for d in decisions] == list(range(episode.length))
        assert sum(d.reward for d in decisions) == pytest.approx(episode.episode_return)
        assert decisions[-1].terminated or decisions[-1].truncated
        # Replaying the recorded seed and actions in a fresh env gives the same rewards and ending.
        env = make_env(episode.env)
        env.reset(seed=episode.seed)
        for d in decisions:
            assert str(env.state) == d.state
            _, reward, terminated, truncated, _ = env.step(d.chosen)
            assert (float(reward), terminated, truncated) == (d.reward, d.terminated, d.truncated)


def test_each_step_writes_one_decision_per_env(store):
    runner = VectorRunner(["Taxi-v4"] * 3, store, RandomPolicy(seed=0), seed=1)
    for _ in range(5):
        runner.step()
    assert store.count_decisions() == 15
    assert {d.policy for d in store.decisions()} == {"random"}
    assert all(len(d.probs) == 6 and abs(sum(d.probs) - 1) < 1e-9 for d in store.decisions())


def test_the_policy_can_be_swapped_between_steps(store):
    class Always:
        name, version = "always-first", 7

        def decide(self, observations, greedy=False):
            return RandomPolicy().decide(observations, greedy=True)

    runner = VectorRunner(["FrozenLake-v1"] * 2, store, RandomPolicy(seed=0), seed=2)
    runner.step()
    runner.policy = Always()
    runner.step()
    policies = [(d.policy, d.model_version) for d in store.decisions()]
    assert policies == [("random", None)] * 2 + [("always-first", 7)] * 2
