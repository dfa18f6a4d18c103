"""The experience store's tables (SQLAlchemy 2.0 typed ORM). Bump SCHEMA_VERSION when a table changes."""

from datetime import UTC, datetime

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SCHEMA_VERSION = 1


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


class Decision(Base):
    """One decision: what the policy saw, the distribution it gave, what it chose, and what followed."""

    __tablename__ = "decisions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id", ondelete="CASCADE"), index=True)
    step: Mapped[int] = mapped_column(Integer)
    env: Mapped[str] = mapped_column(String(64))
    task_id: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(64))
    """The environment's discrete state, as text (to tell seen from unseen states)."""
    observation: Mapped[str] = mapped_column(Text)
    """The observation text alone (what the HRM student reads)."""
    prompt: Mapped[str] = mapped_column(Text)
    """The full prompt the deciding policy was given."""
    legal_actions: Mapped[list] = mapped_column(JSON)
    chosen: Mapped[int] = mapped_column(Integer)
    probs: Mapped[list] = mapped_column(JSON)
    policy: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[int | None] = mapped_column(Integer)
    reward: Mapped[float] = mapped_column(Float)
    terminated: Mapped[bool] = mapped_column(Boolean)
    truncated: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (Index("ix_decisions_env_policy", "env", "policy"),)


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
