"""The experience store on SQLite and PostgreSQL: round trips, summaries, state, events, versions, concurrency."""

import multiprocessing as mp
import sqlite3
import time

import pytest

from data.store import DecisionRecord, EpisodeEnd, EpisodeStart, ExperienceStore, StoreError

ACTIONS = ("south", "north", "east", "west", "pickup", "dropoff")


def decision(episode_id: int, step: int, env: str = "Taxi-v4", policy: str = "oracle", reward: float = -1.0,
             terminated: bool = False) -> DecisionRecord:
    return DecisionRecord(episode_id, step, env, 2, f"state-{step}", f"obs {step}", f"prompt {step}", ACTIONS,
                          step % 6, (0.5, 0.1, 0.1, 0.1, 0.1, 0.1), policy, None, reward, terminated, False)


def test_a_batch_round_trips_in_order(db_url):
    store = ExperienceStore(db_url)
    ids = store.start_episodes([EpisodeStart("Taxi-v4", seed=s, policy="oracle") for s in (7, 8)])
    assert len(ids) == 2 and ids[0] != ids[1]
    batch = [decision(ids[0], 0), decision(ids[1], 0), decision(ids[0], 1, reward=20.0, terminated=True)]
    new = store.record_step(batch, endings=[EpisodeEnd(ids[0], 19.0, 2, True, False)],
                            starts=[EpisodeStart("Taxi-v4", seed=9, policy="oracle")])
    assert len(new) == 1
    assert list(store.decisions()) == batch
    assert store.count_decisions() == 3 and store.count_decisions(env="FrozenLake-v1") == 0
    assert list(store.decisions(episode_ids=[ids[1]])) == [batch[1]]
    [finished] = store.episodes()
    assert (finished.id, finished.seed, finished.episode_return, finished.length, finished.success) == (
        ids[0], 7, 19.0, 2, True)
    assert len(store.episodes(finished=None)) == 3


def test_summary_per_env_and_policy(db_url):
    store = ExperienceStore(db_url)
    a, b, c = store.start_episodes([EpisodeStart("Taxi-v4", 1, "oracle"), EpisodeStart("Taxi-v4", 2, "oracle"),
                                    EpisodeStart("FrozenLake-v1", 3, "random")])
    store.record_step([decision(a, 0), decision(b, 0), decision(c, 0, env="FrozenLake-v1", policy="random")],
                      endings=[EpisodeEnd(a, 8.0, 12, True, False), EpisodeEnd(b, -200.0, 200, False, True)])
    rows = {(r.env, r.policy): r for r in store.summary()}
    taxi = rows["Taxi-v4", "oracle"]
    assert (taxi.episodes, taxi.decisions, taxi.mean_return, taxi.success_rate) == (2, 2, -96.0, 0.5)
    lake = rows["FrozenLake-v1", "random"]
    assert (lake.episodes, lake.decisions, lake.mean_return) == (0, 1, None)


def test_state_and_events(db_url):
    store = ExperienceStore(db_url)
    assert store.get_state("phase", "collect") == "collect"
    store.set_state("phase", "distil")
    store.set_state("phase", {"name": "improve", "round": 2})
    assert ExperienceStore(db_url).get_state("phase") == {"name": "improve", "round": 2}
    store.log_event("phase", "collect → distil", decisions=1100)
    store.log_event("swap", "HRM v1 active", version=1)
    assert [(e.kind, e.data) for e in store.events()] == [("swap", {"version": 1}), ("phase", {"decisions": 1100})]
    assert [e.kind for e in store.events(kind="phase")] == ["phase"]


def test_decisions_must_belong_to_an_episode(db_url):
    store = ExperienceStore(db_url)
    with pytest.raises(Exception, match="(?i)foreign key"):
        store.record_step([decision(12345, 0)])
    assert store.count_decisions() == 0  # the failed transaction left nothing behind


def test_another_schema_version_is_refused_with_a_clear_error(tmp_path):
    path = tmp_path / "old.db"
    ExperienceStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '0' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="schema version 0, but this Aegis reads version 1"):
        ExperienceStore(path)


def test_a_foreign_database_is_refused(tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE episodes (x INTEGER)")
    with pytest.raises(StoreError, match="no Aegis schema version"):
        ExperienceStore(path)


def _write_steps(db: str, steps: int, ready) -> None:
    store = ExperienceStore(db)
    [episode] = store.start_episodes([EpisodeStart("Taxi-v4", 0, "oracle")])
    ready.set()
    for step in range(steps):
        store.record_step([decision(episode, step * 64 + i) for i in range(64)])


def _read_summaries(db: str, stop, errors) -> None:
    store = ExperienceStore(db)
    while not stop.is_set():
        try:
            store.summary()
            store.count_decisions()
        except Exception as e:  # reported to the test, which fails on any
            errors.put(repr(e))
        time.sleep(0.005)


@pytest.mark.slow
def test_a_writer_and_a_reader_process_work_at_once(db_url):
    ExperienceStore(db_url).close()  # created before the race so both processes open an existing store
    ctx = mp.get_context("spawn")
    ready, stop, errors = ctx.Event(), ctx.Event(), ctx.Queue()
    writer = ctx.Process(target=_write_steps, args=(db_url, 150, ready))
    reader = ctx.Process(target=_read_summaries, args=(db_url, stop, errors))
    writer.start()
    ready.wait(30)
    reader.start()
    writer.join(120)
    stop.set()
    reader.join(30)
    assert writer.exitcode == 0 and reader.exitcode == 0
    assert errors.empty(), errors.get()
    assert ExperienceStore(db_url).count_decisions() == 150 * 64
