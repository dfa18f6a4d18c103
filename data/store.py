"""The experience store: every decision and episode the agent produced, plus models, training runs and events.

SQLAlchemy 2.0 over SQLite by default (a file in WAL mode: readers never wait for the writer, the writer waits at
most `busy_timeout` for another writer) or any SQLAlchemy URL (PostgreSQL for many workers). Writes go in one
transaction per runner step; SQLite write transactions start with BEGIN IMMEDIATE so two writers queue instead of
failing with "database is locked" on a lock upgrade.

    store = ExperienceStore("runs/aegis.db")
    [episode] = store.start_episodes([EpisodeStart("Taxi-v4", seed=1, policy="oracle")])
    store.record_step([DecisionRecord(episode, 0, ...)], endings=[EpisodeEnd(episode, 7.0, 13, True, False)])
"""

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, case, create_engine, event, func, insert, inspect, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from data.schema import (
    SCHEMA_VERSION,
    Base,
    Decision,
    Episode,
    Event,
    Meta,
    ModelVersion,
    OrchestratorState,
    TrainingRun,
    utcnow,
)

DEFAULT_DB = "runs/aegis.db"


def absolute_db(db: str | Path) -> str:
    """Returns a store location that means the same from any folder: a SQLite path made absolute, a URL unchanged."""
    return str(db) if "://" in str(db) else str(Path(db).resolve())
SQLITE_BUSY_TIMEOUT_MS = 30_000


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
            self._prepare_schema()
        except SQLAlchemyError as e:
            raise StoreError(f"cannot open the experience store {self._safe_url()}: {_first_line(e)}") from e

    def _safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True) if hasattr(self, "engine") else self.url

    def _prepare_schema(self) -> None:
        """Creates the tables of a new store; refuses a store written by another schema version."""
        with self._write() as session:
            tables = set(inspect(session.connection()).get_table_names())
            if "meta" in tables:
                row = session.get(Meta, "schema_version")
                found = int(row.value) if row else None
                if found != SCHEMA_VERSION:
                    raise StoreError(
                        f"the experience store {self._safe_url()} has schema version {found}, but this Aegis reads "
                        f"version {SCHEMA_VERSION}; point --db at a new file or use the Aegis that wrote it")
                return
            if tables & set(Base.metadata.tables):
                raise StoreError(f"{self._safe_url()} holds tables but no Aegis schema version; "
                                 "point --db at a new file")
            Base.metadata.create_all(session.connection())
            session.add(Meta(key="schema_version", value=str(SCHEMA_VERSION)))

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
        with self._write() as session:
            if decisions:
                session.execute(insert(Decision.__table__), [
                    {**d.__dict__, "legal_actions": list(d.legal_actions), "probs": [float(p) for p in d.probs],
                     "created_at": now} for d in decisions])
            for end in endings:
                session.execute(update(Episode).where(Episode.id == end.episode_id).values(
                    episode_return=end.episode_return, length=end.length, success=end.success,
                    truncated=end.truncated, ended_at=now))
            if not starts:
                return []
            result = session.execute(insert(Episode).returning(Episode.id, sort_by_parameter_order=True),
                                     [{**s.__dict__, "started_at": now} for s in starts])
            return list(result.scalars())

    def start_episodes(self, starts: Sequence[EpisodeStart]) -> list[int]:
        """Opens episodes; returns their ids in order."""
        return self.record_step((), (), starts)

    def count_decisions(self, env: str | None = None, policy: str | None = None) -> int:
        """Returns the number of stored decisions (of one env and/or policy if given)."""
        query = _filtered(select(func.count(Decision.id)), Decision, env, policy)
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
        decision id (`up_to`, inclusive)."""
        query = _filtered(select(Decision), Decision, env, policy).order_by(Decision.id)
        if up_to is not None:
            query = query.where(Decision.id <= up_to)
        if episode_ids is not None:
            query = query.where(Decision.episode_id.in_(list(episode_ids)))
        with self._read() as session:
            for d in session.scalars(query.execution_options(yield_per=chunk)):
                yield DecisionRecord(d.episode_id, d.step, d.env, d.task_id, d.state, d.observation, d.prompt,
                                     tuple(d.legal_actions), d.chosen, tuple(d.probs), d.policy, d.model_version,
                                     d.reward, d.terminated, d.truncated)

    def episodes(self, env: str | None = None, policy: str | None = None, finished: bool | None = True,
                 limit: int | None = None) -> list[EpisodeRow]:
        """Returns episodes, newest first (only finished ones by default; `finished=None` for all)."""
        query = _filtered(select(Episode), Episode, env, policy).order_by(Episode.id.desc()).limit(limit)
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
        decision_query = select(Decision.env, Decision.policy, func.count(Decision.id)).group_by(Decision.env,
                                                                                                 Decision.policy)
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


def _filtered(query, table, env: str | None, policy: str | None):
    if env is not None:
        query = query.where(table.env == env)
    if policy is not None:
        query = query.where(table.policy == policy)
    return query


def _first_line(error: Exception) -> str:
    text = str(getattr(error, "orig", None) or error)
    return text.splitlines()[0] if text else type(error).__name__
