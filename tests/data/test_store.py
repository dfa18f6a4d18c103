"""The experience store on SQLite and PostgreSQL: round trips, summaries, state, events, versions, concurrency."""

import multiprocessing as mp
import sqlite3
import time
from dataclasses import replace

import pytest
from sqlalchemy import func, select

from data.schema import StoredText
from data.store import DecisionRecord, EpisodeEnd, EpisodeStart, ExperienceStore, StoreError
from tests.data.records import assert_same_decisions

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
    assert_same_decisions(store.decisions(), batch)
    assert store.count_decisions() == 3 and store.count_decisions(env="FrozenLake-v1") == 0
    assert_same_decisions(store.decisions(episode_ids=[ids[1]]), [batch[1]])
    assert sum(next(store.decisions()).probs) == pytest.approx(1.0, abs=1e-12)  # float32 on disk, a distribution
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
    [episode] = store.start_episodes([EpisodeStart("Taxi-v4", 0, "oracle")])
    store.record_step([decision(episode, 0)])  # the same texts again: the rolled-back ids were not remembered
    assert_same_decisions(store.decisions(), [decision(episode, 0)])


def test_each_distinct_text_is_stored_once(db_url):
    store = ExperienceStore(db_url)
    [episode] = store.start_episodes([EpisodeStart("Taxi-v4", 0, "oracle")])
    same = decision(episode, 0)
    store.record_step([same, replace(same, step=1), replace(same, step=2, observation="obs 1")])
    ExperienceStore(db_url).record_step([replace(same, step=3)])  # another writer, with no ids remembered
    with store.engine.connect() as connection:
        texts = connection.scalar(select(func.count(StoredText.id)))
    assert texts == 6  # env, policy, "obs 0", "obs 1", "prompt 0", the legal actions
    assert [d.step for d in store.decisions()] == [0, 1, 2, 3]


def test_another_schema_version_is_refused_with_a_clear_error(tmp_path):
    path = tmp_path / "old.db"
    ExperienceStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '0' WHERE key = 'schema_version'")
        conn.execute("DROP TABLE alembic_version")
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


def _write_shared_texts(db: str, start, steps: int) -> None:
    store = ExperienceStore(db)
    [episode] = store.start_episodes([EpisodeStart("Taxi-v4", 0, "oracle")])
    start.wait(30)
    for step in range(steps):
        store.record_step([replace(decision(episode, step), observation=f"obs {step % 7}", prompt=f"p {step % 5}")])


@pytest.mark.slow
def test_two_writer_processes_store_each_new_text_once(db_url):
    ExperienceStore(db_url).close()
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    writers = [ctx.Process(target=_write_shared_texts, args=(db_url, start, 60)) for _ in range(2)]
    for writer in writers:
        writer.start()
    start.set()
    for writer in writers:
        writer.join(120)
    assert [writer.exitcode for writer in writers] == [0, 0]
    store = ExperienceStore(db_url)
    assert store.count_decisions() == 120
    with store.engine.connect() as connection:
        assert connection.scalar(select(func.count(StoredText.id))) == 3 + 7 + 5  # env, policy, actions; obs; prompts


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
