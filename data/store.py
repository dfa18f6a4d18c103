"""The experience store: every decision and episode the agent produced, plus models, training runs and events.

SQLAlchemy 2.0 over SQLite by default (a file in WAL mode: readers never wait for the writer, the writer waits at
most `busy_timeout` for another writer) or PostgreSQL (for many workers). Writes go in one transaction per runner
step; SQLite write transactions start with BEGIN IMMEDIATE so two writers queue instead of failing with "database is
locked" on a lock upgrade. Each distinct text (observation, prompt, legal actions, env, policy) is stored once and
decisions refer to it by id (data/schema.py).

Opening a store brings its schema to the newest Alembic revision (data/migrations): a new database gets it; an older
store is upgraded in place in one transaction, after a copy of a SQLite file is kept beside it (`aegis.db.v1-backup`
for a v1 store); a PostgreSQL store gets no copy, so back it up first (pg_dump). `python -m data.migrate --db PATH`
does the same on its own. A store newer than this code is refused with a StoreError.

    store = ExperienceStore("runs/aegis.db")
    [episode] = store.start_episodes([EpisodeStart("Taxi-v4", seed=1, policy="oracle")])
    store.record_step([DecisionRecord(episode, 0, ...)], endings=[EpisodeEnd(episode, 7.0, 13, True, False)])
"""

import json
import os
import sqlite3
from collections import ChainMap
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, case, create_engine, event, func, insert, inspect, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, aliased

from data.schema import (
    IDS_PER_QUERY,
    SCHEMA_VERSION,
    Base,
    Decision,
    Episode,
    Event,
    Meta,
    ModelVersion,
    OrchestratorState,
    StoredText,
    TrainingRun,
    insert_texts,
    legal_actions_text,
    pack_probs,
    text_hash,
    unpack_probs,
    utcnow,
)

DEFAULT_DB = "runs/aegis.db"
DEFAULT_MODELS = "runs/models"  # checkpoints of distillation and RL runs


def absolute_db(db: str | Path) -> str:
    """Returns a store location that means the same from any folder: a SQLite path made absolute, a URL unchanged."""
    return str(db) if "://" in str(db) else str(Path(db).resolve())


SQLITE_BUSY_TIMEOUT_MS = 30_000
MIGRATIONS = Path(__file__).with_name("migrations")
V1_REVISION = "0001"
"""The Alembic revision of schema v1, the schema of stores that predate Alembic (`meta.schema_version` "1")."""


class StoreError(RuntimeError):
    """The store cannot be opened or used; the message says what happened and what to do."""


@dataclass(frozen=True)
class EpisodeStart:
    """A new episode to open."""

    env: str
    seed: int | None
    policy: str
    model_version: int | None = None


@dataclass(frozen=True)
class EpisodeEnd:
    """How an episode finished."""

    episode_id: int
    episode_return: float
    length: int
    success: bool
    truncated: bool


@dataclass(frozen=True)
class DecisionRecord:
    """One decision as the runner writes it and training reads it."""

    episode_id: int
    step: int
    env: str
    task_id: int
    state: str
    observation: str
    prompt: str
    legal_actions: tuple[str, ...]
    chosen: int
    probs: tuple[float, ...]
    policy: str
    model_version: int | None
    reward: float
    terminated: bool
    truncated: bool


@dataclass(frozen=True)
class Outcome:
    """A stored decision reduced to what a model of the environment needs, its texts by id (`ExperienceStore.texts`)."""

    id: int
    episode_id: int
    step: int
    task_id: int
    observation_id: int
    legal_actions_id: int
    chosen: int
    reward: float
    terminated: bool
    truncated: bool


@dataclass(frozen=True)
class SchemaUpgrade:
    """An upgrade done when a store was opened: the schema it had, the revision it has now, the copy kept."""

    from_schema: str
    """"v1" (a store that predates Alembic) or "revision-<id>"."""
    to_revision: str
    backup: Path | None


@dataclass(frozen=True)
class EpisodeRow:
    """A stored episode."""

    id: int
    env: str
    seed: int | None
    policy: str
    model_version: int | None
    episode_return: float
    length: int
    success: bool | None
    truncated: bool | None
    started_at: datetime
    ended_at: datetime | None


@dataclass(frozen=True)
class SummaryRow:
    """Totals for one (env, policy) pair; returns and success over finished episodes."""

    env: str
    policy: str
    episodes: int
    decisions: int
    mean_return: float | None
    success_rate: float | None


@dataclass(frozen=True)
class EventRow:
    """A logged event."""

    id: int
    time: datetime
    kind: str
    message: str
    data: dict


@dataclass(frozen=True)
class VersionRow:
    """A registered model version."""

    id: int
    parent_id: int | None
    kind: str
    checkpoint_path: str
    status: str
    metrics: dict
    replaced_id: int | None
    created_at: datetime
    activated_at: datetime | None


@dataclass(frozen=True)
class TrainingRunRow:
    """A training run and its per-epoch metrics."""

    id: int
    kind: str
    status: str
    config: dict
    metrics: list
    error: str | None
    model_version_id: int | None
    started_at: datetime
    ended_at: datetime | None


MODEL_STATUSES = ("candidate", "active", "retired", "rejected")


def _version_row(v: ModelVersion) -> VersionRow:
    return VersionRow(v.id, v.parent_id, v.kind, v.checkpoint_path, v.status, dict(v.metrics or {}), v.replaced_id,
                      v.created_at, v.activated_at)


def _run_row(r: TrainingRun) -> TrainingRunRow:
    return TrainingRunRow(r.id, r.kind, r.status, dict(r.config or {}), list(r.metrics or []), r.error,
                          r.model_version_id, r.started_at, r.ended_at)


@cache
def migration_scripts() -> ScriptDirectory:
    """Returns the store's Alembic revisions (data/migrations)."""
    return ScriptDirectory(str(MIGRATIONS))


def alembic_config(connection: Connection) -> Config:
    """Returns an Alembic config that runs data/migrations on `connection`, in its transaction (no alembic.ini)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def database_url(db: str | Path) -> str:
    """Returns a SQLAlchemy URL for `db`: a URL as given, or a SQLite URL for a file path."""
    db = str(db)
    return db if "://" in db else f"sqlite:///{db}"


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" hook below emits BEGIN itself
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across crashes of the process
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection):
        immediate = connection.get_execution_options().get("aegis_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class ExperienceStore:
    """Decisions, episodes, model versions, training runs, orchestrator state and events in one database."""

    def __init__(self, db: str | Path = DEFAULT_DB):
        self.url = database_url(db)
        try:
            if self.url.startswith("sqlite:///") and self.url != "sqlite:///:memory:":
                Path(self.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            self.engine = _sqlite_engine(self.url) if self.url.startswith("sqlite") else create_engine(self.url)
            if self.engine.dialect.name not in ("sqlite", "postgresql"):
                raise StoreError(f"{self._safe_url()}: the experience store runs on SQLite or PostgreSQL, not "
                                 f"{self.engine.dialect.name}; point --db at a file or a postgresql:// URL")
            self._text_ids: dict[str, int] = {}
            """Ids of texts known to be committed (texts are never deleted, so an id stays right)."""
            self.schema_upgrade = self._prepare_schema()
            """The upgrade opening did (None when the store already had the newest schema)."""
        except SQLAlchemyError as e:
            raise StoreError(f"cannot open the experience store {self._safe_url()}: {_first_line(e)}") from e

    def _safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True) if hasattr(self, "engine") else self.url

    def _prepare_schema(self) -> SchemaUpgrade | None:
        """Creates the newest schema in an empty database, or upgrades an older store in place; returns the upgrade
        done (None if none was needed). Refuses a foreign database and a store newer than this code."""
        head = migration_scripts().get_current_head()
        with self.engine.connect() as connection:
            connection.execution_options(aegis_write=True)
            with connection.begin():  # BEGIN IMMEDIATE on SQLite: one process at a time creates or upgrades
                found = self._stored_revision(connection)
                config = alembic_config(connection)
                if found is None:
                    Base.metadata.create_all(connection)
                    connection.execute(insert(Meta).values(key="schema_version", value=str(SCHEMA_VERSION)))
                    command.stamp(config, head)
                    return None
                if found == head:
                    return None
                from_schema = "v1" if found == V1_REVISION else f"revision-{found}"
                backup = self._backup(from_schema)
                if from_schema == "v1":
                    command.stamp(config, V1_REVISION)  # v1 predates Alembic: no alembic_version table yet
                command.upgrade(config, head)
        if self.engine.dialect.name == "sqlite":
            self._vacuum()
        return SchemaUpgrade(from_schema, head, backup)

    def _stored_revision(self, connection: Connection) -> str | None:
        """Returns the store's Alembic revision (that of v1 for a v1 store), None for an empty database."""
        tables = set(inspect(connection).get_table_names())
        if "alembic_version" in tables:
            found = MigrationContext.configure(connection).get_current_revision()
            known = {script.revision for script in migration_scripts().walk_revisions()}
            if found not in known:
                raise StoreError(
                    f"the experience store {self._safe_url()} has schema revision {found}, newer than this Aegis "
                    f"knows (up to {migration_scripts().get_current_head()}); use the newer Aegis that wrote it, or "
                    "point --db at a new file")
            return found
        if "meta" in tables:
            row = connection.execute(select(Meta.value).where(Meta.key == "schema_version")).scalar()
            if row != "1":
                raise StoreError(
                    f"the experience store {self._safe_url()} has schema version {row}, but this Aegis reads "
                    "version 1 (and upgrades it) or a newer Alembic revision; point --db at a new file or use the "
                    "Aegis that wrote it")
            return V1_REVISION
        if tables & set(Base.metadata.tables):
            raise StoreError(f"{self._safe_url()} holds tables but no Aegis schema version; point --db at a new file")
        return None

    def _backup(self, schema: str) -> Path | None:
        """Copies a SQLite store beside itself (`aegis.db.v1-backup` for schema "v1") before an upgrade; returns the
        copy's path (None for PostgreSQL or an in-memory database). Called inside the upgrade's write transaction,
        which keeps other writers out: the copy is the store the upgrade starts from."""
        if self.engine.dialect.name != "sqlite" or self.url == "sqlite:///:memory:":
            return None
        path = Path(self.url.removeprefix("sqlite:///"))
        backup, partial = path.with_name(f"{path.name}.{schema}-backup"), path.with_name(f"{path.name}.partial")
        source, target = sqlite3.connect(path), sqlite3.connect(partial)  # WAL: this reader sees the committed store
        try:
            source.backup(target)
        finally:
            source.close()
            target.close()
        os.replace(partial, backup)
        return backup

    def _vacuum(self) -> None:
        """Gives the space an upgrade freed back to the file system (skipped while another process holds it)."""
        raw = self.engine.raw_connection()
        try:
            raw.driver_connection.execute("VACUUM")
        except sqlite3.OperationalError:  # busy: the upgrade stands, the free pages are reused by later writes
            pass
        finally:
            raw.close()

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """Yields a session whose transaction commits on exit (BEGIN IMMEDIATE on SQLite)."""
        with Session(self.engine) as session:
            session.connection(execution_options={"aegis_write": True})  # begins the transaction
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with Session(self.engine) as session:
            yield session

    def close(self) -> None:
        """Releases the database connections."""
        self.engine.dispose()

    # --- episodes and decisions ----------------------------------------------------------------------------------

    def record_step(self, decisions: Sequence[DecisionRecord], endings: Sequence[EpisodeEnd] = (),
                    starts: Sequence[EpisodeStart] = ()) -> list[int]:
        """Writes one runner step in one transaction: its decisions, the episodes it finished and the episodes it
        started; returns the new episodes' ids in the order of `starts`."""
        now = utcnow()
        legal = [legal_actions_text(d.legal_actions) for d in decisions]
        with self._write() as session:
            needed = {text for d, actions in zip(decisions, legal, strict=True)
                      for text in (d.env, d.policy, d.observation, d.prompt, actions)}
            new_ids = insert_texts(session.connection(), {text for text in needed if text not in self._text_ids})
            ids = ChainMap(new_ids, self._text_ids)
            if decisions:
                session.execute(insert(Decision.__table__), [
                    {"episode_id": d.episode_id, "step": d.step, "env_id": ids[d.env], "task_id": d.task_id,
                     "state": d.state, "observation_id": ids[d.observation], "prompt_id": ids[d.prompt],
                     "legal_actions_id": ids[actions], "chosen": d.chosen, "probs": pack_probs(d.probs),
                     "policy_id": ids[d.policy], "model_version": d.model_version, "reward": d.reward,
                     "terminated": d.terminated, "truncated": d.truncated, "recorded_at": now.timestamp()}
                    for d, actions in zip(decisions, legal, strict=True)])
            for end in endings:
                session.execute(update(Episode).where(Episode.id == end.episode_id).values(
                    episode_return=end.episode_return, length=end.length, success=end.success,
                    truncated=end.truncated, ended_at=now))
            started = []
            if starts:
                result = session.execute(insert(Episode).returning(Episode.id, sort_by_parameter_order=True),
                                         [{**s.__dict__, "started_at": now} for s in starts])
                started = list(result.scalars())
        self._text_ids.update(new_ids)  # only now: a rolled-back transaction's texts do not exist
        return started

    def start_episodes(self, starts: Sequence[EpisodeStart]) -> list[int]:
        """Opens episodes; returns their ids in order."""
        return self.record_step((), (), starts)

    def count_decisions(self, env: str | None = None, policy: str | None = None) -> int:
        """Returns the number of stored decisions (of one env and/or policy if given)."""
        query = _decisions_of(select(func.count(Decision.id)), env, policy)
        with self._read() as session:
            return int(session.scalar(query))

    def last_decision_id(self) -> int:
        """Returns the id of the newest stored decision (0 in an empty store)."""
        with self._read() as session:
            return int(session.scalar(select(func.max(Decision.id))) or 0)

    def decisions(self, env: str | None = None, policy: str | None = None,
                  episode_ids: Iterable[int] | None = None, chunk: int = 2000,
                  up_to: int | None = None) -> Iterator[DecisionRecord]:
        """Yields stored decisions in the order they were written, filtered by env, policy, episodes and the newest
        decision id (`up_to`, inclusive). Probs come back as stored (float32) rescaled to sum to 1."""
        env_text, policy_text, observation, prompt, legal = (aliased(StoredText) for _ in range(5))
        query = (select(Decision.episode_id, Decision.step, env_text.text, Decision.task_id, Decision.state,
                        observation.text, prompt.text, legal.text, Decision.chosen, Decision.probs, policy_text.text,
                        Decision.model_version, Decision.reward, Decision.terminated, Decision.truncated)
                 .join(env_text, env_text.id == Decision.env_id).join(policy_text, policy_text.id == Decision.policy_id)
                 .join(observation, observation.id == Decision.observation_id)
                 .join(prompt, prompt.id == Decision.prompt_id).join(legal, legal.id == Decision.legal_actions_id)
                 .order_by(Decision.id))
        query = _decisions_of(query, env, policy)
        if up_to is not None:
            query = query.where(Decision.id <= up_to)
        if episode_ids is not None:
            query = query.where(Decision.episode_id.in_(list(episode_ids)))
        actions: dict[str, tuple[str, ...]] = {}
        with self._read() as session:
            for row in session.execute(query.execution_options(yield_per=chunk)):
                if row[7] not in actions:
                    actions[row[7]] = tuple(json.loads(row[7]))
                yield DecisionRecord(*row[:7], actions[row[7]], row[8], stored_probs(row[9]), *row[10:])

    def outcomes(self, envs: Sequence[str], after: int = 0, chunk: int = 5000) -> Iterator[Outcome]:
        """Yields the decisions of `envs` with an id above `after`, in the order they were written, as `Outcome`s
        (integers and flags only: a full store streams through in bounded memory)."""
        query = (select(Decision.id, Decision.episode_id, Decision.step, Decision.task_id, Decision.observation_id,
                        Decision.legal_actions_id, Decision.chosen, Decision.reward, Decision.terminated,
                        Decision.truncated)
                 .where(Decision.id > after, Decision.env_id.in_([text_id(env) for env in envs]))
                 .order_by(Decision.id))
        with self._read() as session:
            for row in session.execute(query.execution_options(yield_per=chunk)):
                yield Outcome(*row)

    def texts(self, ids: Iterable[int]) -> dict[int, str]:
        """Returns the stored texts with these ids."""
        ids, found = sorted(set(ids)), {}
        with self._read() as session:
            for start in range(0, len(ids), IDS_PER_QUERY):
                part = ids[start:start + IDS_PER_QUERY]
                rows = session.execute(select(StoredText.id, StoredText.text).where(StoredText.id.in_(part)))
                found.update((i, text) for i, text in rows)
        return found

    def episodes(self, env: str | None = None, policy: str | None = None, finished: bool | None = True,
                 limit: int | None = None) -> list[EpisodeRow]:
        """Returns episodes, newest first (only finished ones by default; `finished=None` for all)."""
        query = _episodes_of(select(Episode), env, policy).order_by(Episode.id.desc()).limit(limit)
        if finished is not None:
            query = query.where(Episode.ended_at.is_not(None) if finished else Episode.ended_at.is_(None))
        with self._read() as session:
            return [EpisodeRow(e.id, e.env, e.seed, e.policy, e.model_version, e.episode_return, e.length,
                               e.success, e.truncated, e.started_at, e.ended_at) for e in session.scalars(query)]

    def summary(self) -> list[SummaryRow]:
        """Returns per (env, policy) totals: episodes finished, decisions, mean return and success rate."""
        finished = Episode.ended_at.is_not(None)
        episode_query = (select(Episode.env, Episode.policy, func.count(Episode.id), func.avg(Episode.episode_return),
                                func.avg(case((Episode.success, 1.0), else_=0.0)))
                         .where(finished).group_by(Episode.env, Episode.policy))
        counts = (select(Decision.env_id, Decision.policy_id, func.count(Decision.id).label("decisions"))
                  .group_by(Decision.env_id, Decision.policy_id).subquery())
        env_text, policy_text = aliased(StoredText), aliased(StoredText)
        decision_query = (select(env_text.text, policy_text.text, counts.c.decisions)
                          .join(env_text, env_text.id == counts.c.env_id)
                          .join(policy_text, policy_text.id == counts.c.policy_id))
        with self._read() as session:
            episodes = {(e, p): (n, r, s) for e, p, n, r, s in session.execute(episode_query)}
            decisions = {(e, p): n for e, p, n in session.execute(decision_query)}
        rows = []
        for key in sorted(set(episodes) | set(decisions)):
            n, mean_return, success = episodes.get(key, (0, None, None))
            rows.append(SummaryRow(key[0], key[1], n, decisions.get(key, 0),
                                   None if mean_return is None else float(mean_return),
                                   None if success is None else float(success)))
        return rows

    # --- orchestrator state and events ---------------------------------------------------------------------------

    def get_state(self, key: str, default=None):
        """Returns the stored value of orchestrator state `key`, or `default`."""
        with self._read() as session:
            row = session.get(OrchestratorState, key)
            return default if row is None else row.value

    def set_state(self, key: str, value) -> None:
        """Stores a JSON-serialisable value under `key`."""
        with self._write() as session:
            row = session.get(OrchestratorState, key)
            if row is None:
                session.add(OrchestratorState(key=key, value=value))
            else:
                row.value = value
                row.updated_at = utcnow()

    def log_event(self, kind: str, message: str, **data) -> None:
        """Appends an event (kind such as "phase", "train", "swap", "promote", "reject")."""
        with self._write() as session:
            session.add(Event(kind=kind, message=message, data=data))

    def events(self, limit: int = 20, kind: str | None = None) -> list[EventRow]:
        """Returns the latest events, newest first."""
        query = select(Event).order_by(Event.id.desc()).limit(limit)
        if kind is not None:
            query = query.where(Event.kind == kind)
        with self._read() as session:
            return [EventRow(e.id, e.time, e.kind, e.message, e.data) for e in session.scalars(query)]


    # --- model versions -------------------------------------------------------------------------------------------

    def add_model_version(self, kind: str, checkpoint_path: str | Path, metrics: dict | None = None,
                          parent_id: int | None = None) -> int:
        """Registers a trained model as a candidate; returns its version id."""
        with self._write() as session:
            version = ModelVersion(kind=kind, checkpoint_path=str(checkpoint_path), status="candidate",
                                   metrics=metrics or {}, parent_id=parent_id)
            session.add(version)
            session.flush()
            return version.id

    def model_version(self, version_id: int) -> VersionRow | None:
        """Returns one version, or None if there is no such version."""
        with self._read() as session:
            version = session.get(ModelVersion, version_id)
            return None if version is None else _version_row(version)

    def model_versions(self, limit: int | None = None) -> list[VersionRow]:
        """Returns versions, newest first."""
        with self._read() as session:
            query = select(ModelVersion).order_by(ModelVersion.id.desc()).limit(limit)
            return [_version_row(v) for v in session.scalars(query)]

    def active_version(self) -> VersionRow | None:
        """Returns the active version, or None while the teacher acts."""
        with self._read() as session:
            version = session.scalars(select(ModelVersion).where(ModelVersion.status == "active")).first()
            return None if version is None else _version_row(version)

    def activate_version(self, version_id: int, rollback: bool = False) -> VersionRow:
        """Makes `version_id` the one active version in one transaction (the old one retires); returns it.

        A normal activation remembers the version it replaced; a rollback (`rollback=True`) keeps the target's own
        history so that rolling back again goes further back.
        """
        with self._write() as session:
            target = session.get(ModelVersion, version_id)
            if target is None:
                raise StoreError(f"there is no model version {version_id}; `models` lists them")
            current = session.scalars(select(ModelVersion).where(ModelVersion.status == "active")).first()
            if current is not None and current.id != target.id:
                current.status = "retired"
                if not rollback:
                    target.replaced_id = current.id
            target.status = "active"
            target.activated_at = utcnow()
            session.flush()
            return _version_row(target)

    def set_version_status(self, version_id: int, status: str, **metrics) -> None:
        """Sets a version's status (candidate, retired, rejected) and merges `metrics` into its metrics."""
        if status not in MODEL_STATUSES or status == "active":
            raise ValueError(f"status must be one of candidate, retired, rejected (use activate_version), "
                             f"got {status!r}")
        with self._write() as session:
            version = session.get(ModelVersion, version_id)
            version.status = status
            version.metrics = {**(version.metrics or {}), **metrics}

    # --- training runs --------------------------------------------------------------------------------------------

    def start_training_run(self, kind: str, config: dict) -> int:
        """Records a running training run; returns its id."""
        with self._write() as session:
            run = TrainingRun(kind=kind, status="running", config=config, metrics=[])
            session.add(run)
            session.flush()
            return run.id

    def resume_training_run(self, run_id: int, config_updates: dict) -> None:
        """Marks a training run running again (a resumed run), merging `config_updates` into its config."""
        with self._write() as session:
            run = session.get(TrainingRun, run_id)
            run.status, run.error, run.ended_at = "running", None, None
            run.config = {**(run.config or {}), **config_updates}

    def add_run_metrics(self, run_id: int, metrics: dict) -> None:
        """Appends one epoch's (or evaluation's) metrics to a training run."""
        with self._write() as session:
            run = session.get(TrainingRun, run_id)
            run.metrics = [*(run.metrics or []), metrics]

    def finish_training_run(self, run_id: int, status: str, error: str | None = None,
                            model_version_id: int | None = None) -> None:
        """Closes a training run as "succeeded" or "failed" (with its error)."""
        with self._write() as session:
            run = session.get(TrainingRun, run_id)
            run.status, run.error, run.ended_at = status, error, utcnow()
            if model_version_id is not None:
                run.model_version_id = model_version_id

    def training_runs(self, limit: int | None = None, kind: str | None = None) -> list[TrainingRunRow]:
        """Returns training runs, newest first."""
        query = select(TrainingRun).order_by(TrainingRun.id.desc()).limit(limit)
        if kind is not None:
            query = query.where(TrainingRun.kind == kind)
        with self._read() as session:
            return [_run_row(r) for r in session.scalars(query)]


def _episodes_of(query, env: str | None, policy: str | None):
    if env is not None:
        query = query.where(Episode.env == env)
    if policy is not None:
        query = query.where(Episode.policy == policy)
    return query


def text_id(text: str):
    """Returns a scalar subquery for the id of `text` in the texts table (found by its hash's unique index)."""
    return select(StoredText.id).where(StoredText.hash == text_hash(text)).scalar_subquery()


def _decisions_of(query, env: str | None, policy: str | None):
    if env is not None:
        query = query.where(Decision.env_id == text_id(env))
    if policy is not None:
        query = query.where(Decision.policy_id == text_id(policy))
    return query


def stored_probs(blob: bytes) -> tuple[float, ...]:
    """Returns a stored distribution: its float32 values rescaled to sum to 1 (every policy stores a distribution,
    so the read matches what was written to float32 precision and sums to 1 like it)."""
    probs = unpack_probs(blob)
    total = sum(probs)
    return tuple(p / total for p in probs) if total > 0 else probs


def _first_line(error: Exception) -> str:
    text = str(getattr(error, "orig", None) or error)
    return text.splitlines()[0] if text else type(error).__name__
