"""Schema upgrades: a v1 store (tests/data/fixtures/store-v1.db) opened or migrated keeps everything it held.

The fixture was written by the v1 code (commit ff79dbd): 160 OracleTeacher(epsilon=0.5) decisions and 40 of a
registered student (hrm:v2) over FrozenLake-v1 and Taxi-v4, two model versions, two training runs (one with
metrics), orchestrator state and events; then VACUUMed. The expected values are read from the fixture's v1 tables
the way the v1 code read them (SQLAlchemy types on the reflected tables).
"""

import shutil
import sqlite3
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, create_engine, func, insert, select

from data.schema import Base, StoredText
from data.store import (
    DecisionRecord,
    EpisodeRow,
    EpisodeStart,
    EventRow,
    ExperienceStore,
    SchemaUpgrade,
    StoreError,
    TrainingRunRow,
    VersionRow,
    alembic_config,
)
from tests.conftest import ROOT
from tests.data.conftest import empty_postgres
from tests.data.records import assert_same_decisions

FIXTURE = Path(__file__).parent / "fixtures" / "store-v1.db"


def v1_contents(url: str) -> dict:
    """Returns everything a v1 store holds, as the v1 code returned it."""
    engine = create_engine(url)
    tables = MetaData()
    tables.reflect(engine)
    with engine.connect() as connection:
        rows = {name: connection.execute(select(table).order_by(*table.primary_key)).all()
                for name, table in tables.tables.items()}
    engine.dispose()
    return {
        "decisions": [DecisionRecord(d.episode_id, d.step, d.env, d.task_id, d.state, d.observation, d.prompt,
                                     tuple(d.legal_actions), d.chosen, tuple(d.probs), d.policy, d.model_version,
                                     d.reward, d.terminated, d.truncated) for d in rows["decisions"]],
        "episodes": [EpisodeRow(*row) for row in rows["episodes"]][::-1],
        "versions": [VersionRow(*row) for row in rows["model_versions"]][::-1],
        "runs": [TrainingRunRow(*row) for row in rows["training_runs"]][::-1],
        "events": [EventRow(*row) for row in rows["events"]][::-1],
        "state": {key: value for key, value, _ in rows["orchestrator_state"]},
    }


def assert_holds(store: ExperienceStore, expected: dict) -> None:
    """Asserts the store returns every decision, episode, version, run, state value and event of `expected`."""
    assert_same_decisions(store.decisions(), expected["decisions"])
    assert store.episodes(finished=None) == expected["episodes"]
    assert store.model_versions() == expected["versions"]
    assert store.training_runs() == expected["runs"]
    assert store.events(limit=100) == expected["events"]
    assert {key: store.get_state(key) for key in expected["state"]} == expected["state"]
    assert store.last_decision_id() == 200 and store.count_decisions(policy="hrm:v2") == 40


def assert_newest_schema(url: str) -> None:
    """Asserts the database's tables are exactly those of data/schema.py."""
    engine = create_engine(url)
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    engine.dispose()


@pytest.fixture
def v1_store(tmp_path) -> Path:
    """A copy of the v1 fixture."""
    path = tmp_path / "aegis.db"
    shutil.copy(FIXTURE, path)
    return path


def text_count(store: ExperienceStore) -> int:
    """Returns the number of stored texts."""
    with store.engine.connect() as connection:
        return connection.scalar(select(func.count(StoredText.id)))


def test_opening_a_v1_store_upgrades_it_and_keeps_a_copy(v1_store):
    expected = v1_contents(f"sqlite:///{v1_store}")
    store = ExperienceStore(v1_store)
    backup = v1_store.with_name("aegis.db.v1-backup")
    assert store.schema_upgrade == SchemaUpgrade("v1", "0002", backup)
    assert_holds(store, expected)
    assert_newest_schema(f"sqlite:///{v1_store}")
    assert v1_contents(f"sqlite:///{backup}") == expected  # the copy is the v1 store as it was
    assert ExperienceStore(v1_store).schema_upgrade is None  # upgraded once

    texts = text_count(store)
    [episode] = store.start_episodes([EpisodeStart("Taxi-v4", 1, "oracle:0.5")])
    again = replace(expected["decisions"][0], episode_id=episode, step=0)
    store.record_step([again])
    assert text_count(store) == texts  # the upgrade's texts are found by their hash, not stored twice
    assert_same_decisions(list(store.decisions())[-1:], [again])


def test_the_migrate_command_upgrades_a_v1_store_and_says_so(v1_store):
    expected = v1_contents(f"sqlite:///{v1_store}")
    migrate = [sys.executable, "-m", "data.migrate", "--db", str(v1_store)]
    result = subprocess.run(migrate, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    backup = v1_store.with_name("aegis.db.v1-backup")
    assert result.stdout == f"{v1_store}: upgraded from schema v1 to revision 0002; the v1 store is kept at {backup}\n"
    assert v1_contents(f"sqlite:///{backup}") == expected
    assert_holds(ExperienceStore(v1_store), expected)
    again = subprocess.run(migrate, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.stdout == f"{v1_store} already has the newest schema (revision 0002)\n"


def test_a_store_from_a_newer_aegis_is_refused_in_one_line(tmp_path):
    path = tmp_path / "aegis.db"
    ExperienceStore(path).close()
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0099'")
    with pytest.raises(StoreError) as refused:
        ExperienceStore(path)
    message = str(refused.value)
    assert "\n" not in message
    assert "has schema revision 0099, newer than this Aegis knows (up to 0002)" in message
    assert "use the newer Aegis that wrote it, or point --db at a new file" in message
    result = subprocess.run([sys.executable, "-m", "data.migrate", "--db", str(path)], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1 and result.stderr == message + "\n"


def test_a_new_store_has_the_newest_schema(db_url):
    store = ExperienceStore(db_url)
    assert store.schema_upgrade is None
    assert_newest_schema(store.url)
    with store.engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == "0002"


def in_utc(rows: list) -> list:
    """Returns the rows with their naive times (SQLite's) as UTC times (what PostgreSQL returns)."""
    return [replace(row, **{name: value.replace(tzinfo=UTC) for name, value in row.__dict__.items()
                            if isinstance(value, datetime)}) for row in rows]


def test_a_v1_store_on_postgresql_is_upgraded_in_place(v1_store, postgres_url):
    """The fixture's rows copied into a v1 schema built by revision 0001 on PostgreSQL, then opened."""
    empty_postgres(postgres_url)
    expected = v1_contents(f"sqlite:///{v1_store}")
    source, target = create_engine(f"sqlite:///{v1_store}"), create_engine(postgres_url)
    with target.begin() as connection:
        command.upgrade(alembic_config(connection), "0001")
        connection.exec_driver_sql("DROP TABLE alembic_version")  # as the v1 code left it
        tables = MetaData()
        tables.reflect(connection)
        with source.connect() as v1:
            for table in tables.sorted_tables:
                rows = [row._asdict() for row in v1.execute(select(table))]
                if table.name != "meta" and rows:
                    connection.execute(insert(table), rows)
        for table in ("episodes", "decisions", "model_versions", "training_runs", "events"):
            connection.exec_driver_sql(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))")
    source.dispose()
    target.dispose()
    store = ExperienceStore(postgres_url)
    assert store.schema_upgrade == SchemaUpgrade("v1", "0002", None)  # no copy: back PostgreSQL up with pg_dump
    assert_holds(store, {**expected, **{name: in_utc(expected[name]) for name in ("episodes", "versions", "runs",
                                                                                  "events")}})
    assert_newest_schema(postgres_url)
    [episode] = store.start_episodes([EpisodeStart("Taxi-v4", 1, "oracle:0.5")])  # the id sequences still count on
    store.record_step([replace(expected["decisions"][0], episode_id=episode, step=0)])
    assert store.last_decision_id() == 201


def test_the_migrate_command_creates_no_store_where_there_is_none(tmp_path):
    missing = tmp_path / "typo.db"
    result = subprocess.run([sys.executable, "-m", "data.migrate", "--db", str(missing)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr == f"there is no experience store at {missing}: nothing to upgrade\n"
    assert not missing.exists()
