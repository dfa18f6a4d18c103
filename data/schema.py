"""The experience store's tables (SQLAlchemy 2.0 typed ORM), schema v2: each distinct text is stored once.

A table change needs a new Alembic revision under data/migrations/versions. SCHEMA_VERSION is what `meta` records
for the Aegis that predates Alembic, which reads only that and refuses anything but 1.
"""

import hashlib
import json
import struct
from collections.abc import Collection, Sequence
from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Connection,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SCHEMA_VERSION = 2


def utcnow() -> datetime:
    """Returns the current time, timezone-aware UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Meta(Base):
    """Store-level facts, such as the schema version."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Episode(Base):
    """One episode of one environment under one policy."""

    __tablename__ = "episodes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    env: Mapped[str] = mapped_column(String(64), index=True)
    seed: Mapped[int | None] = mapped_column(Integer)
    policy: Mapped[str] = mapped_column(String(64), index=True)
    model_version: Mapped[int | None] = mapped_column(Integer)
    episode_return: Mapped[float] = mapped_column(Float, default=0.0)
    length: Mapped[int] = mapped_column(Integer, default=0)
    success: Mapped[bool | None] = mapped_column(Boolean)
    truncated: Mapped[bool | None] = mapped_column(Boolean)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class StoredText(Base):
    """A distinct text (an observation, a prompt, legal actions as JSON, an env or policy name), stored once."""

    __tablename__ = "texts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    """SHA-256 of the UTF-8 text (`text_hash`): the unique key that finds a text without indexing long strings."""
    text: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_texts_hash", "hash", unique=True),)


class Decision(Base):
    """One decision: what the policy saw, the distribution it gave, what it chose, and what followed; texts by id."""

    __tablename__ = "decisions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id", ondelete="CASCADE"), index=True)
    step: Mapped[int] = mapped_column(Integer)
    env_id: Mapped[int] = mapped_column(ForeignKey("texts.id", name="fk_decisions_env_id_texts"))
    task_id: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(64))
    """The environment's discrete state, as text (to tell seen from unseen states)."""
    observation_id: Mapped[int] = mapped_column(ForeignKey("texts.id", name="fk_decisions_observation_id_texts"))
    """The observation text alone (what the HRM student reads)."""
    prompt_id: Mapped[int] = mapped_column(ForeignKey("texts.id", name="fk_decisions_prompt_id_texts"))
    """The full prompt the deciding policy was given."""
    legal_actions_id: Mapped[int] = mapped_column(ForeignKey("texts.id", name="fk_decisions_legal_actions_id_texts"))
    """The legal action names as a JSON list (`legal_actions_text`)."""
    chosen: Mapped[int] = mapped_column(Integer)
    probs: Mapped[bytes] = mapped_column(LargeBinary)
    """The distribution over the legal actions, little-endian float32 (`pack_probs`)."""
    policy_id: Mapped[int] = mapped_column(ForeignKey("texts.id", name="fk_decisions_policy_id_texts"))
    model_version: Mapped[int | None] = mapped_column(Integer)
    reward: Mapped[float] = mapped_column(Float)
    terminated: Mapped[bool] = mapped_column(Boolean)
    truncated: Mapped[bool] = mapped_column(Boolean)
    recorded_at: Mapped[float] = mapped_column(Float)
    """When the decision was written, in seconds since the Unix epoch (UTC)."""

    __table_args__ = (Index("ix_decisions_env_policy", "env_id", "policy_id"),)


class ModelVersion(Base):
    """A trained model: its checkpoint, lineage, metrics and status (candidate, active, retired, rejected)."""

    __tablename__ = "model_versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    kind: Mapped[str] = mapped_column(String(16))
    checkpoint_path: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    replaced_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    """The version that was active when this one was activated (what a rollback returns to)."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    activated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class TrainingRun(Base):
    """One training run (distillation or RL): status, per-epoch metrics, the error if it failed."""

    __tablename__ = "training_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    config: Mapped[dict] = mapped_column(JSON, default=dict)
    metrics: Mapped[list] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text)
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OrchestratorState(Base):
    """The orchestrator's persistent state, one JSON value per key (so a restart resumes where it was)."""

    __tablename__ = "orchestrator_state"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict | list | str | int | float | bool | None] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Event(Base):
    """Something that happened (phase change, training run, swap, promotion, rejection), for the REPL."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    kind: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict] = mapped_column(JSON, default=dict)


def text_hash(text: str) -> bytes:
    """Returns the key of `text` in the texts table: the SHA-256 digest of its UTF-8 bytes."""
    return hashlib.sha256(text.encode()).digest()


def legal_actions_text(actions: Sequence[str]) -> str:
    """Returns legal action names as the JSON text the texts table holds for them."""
    return json.dumps(list(actions))


def pack_probs(probs: Sequence[float]) -> bytes:
    """Returns probabilities as the stored blob: little-endian float32."""
    return struct.pack(f"<{len(probs)}f", *probs)


def unpack_probs(blob: bytes) -> tuple[float, ...]:
    """Returns the float32 values of a stored probability blob."""
    return struct.unpack(f"<{len(blob) // 4}f", blob)


IDS_PER_QUERY = 500
"""Values bound in one IN (...) or multi-row statement, well under SQLite's limit on bound parameters."""


def insert_texts(connection: Connection, texts: Collection[str]) -> dict[str, int]:
    """Returns the id of every text in `texts`, inserting the missing ones in the connection's transaction.

    INSERT ... ON CONFLICT DO NOTHING then SELECT by hash: correct while other processes insert the same texts
    (SQLite serialises writers; PostgreSQL makes a conflicting insert wait for the other transaction, and the
    inserts go in hash order so that two writers never wait for each other).
    """
    insert = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}[connection.dialect.name]
    insert_new = insert(StoredText).on_conflict_do_nothing(index_elements=["hash"])
    by_hash = {text_hash(text): text for text in texts}
    rows = [{"hash": key, "text": by_hash[key]} for key in sorted(by_hash)]
    ids = {}
    for start in range(0, len(rows), IDS_PER_QUERY):
        chunk = rows[start:start + IDS_PER_QUERY]
        connection.execute(insert_new, chunk)
        found = select(StoredText.id, StoredText.hash).where(StoredText.hash.in_([row["hash"] for row in chunk]))
        ids.update({by_hash[key]: text_id for text_id, key in connection.execute(found)})
    return ids
