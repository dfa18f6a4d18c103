"""Schema v1: every decision row holds its own texts (observation, prompt, legal actions, probs as JSON).

Revision ID: 0001
Revises: none
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def _time(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Creates the v1 tables and records schema version 1 in `meta`."""
    meta = op.create_table("meta", sa.Column("key", sa.String(64), primary_key=True),
                           sa.Column("value", sa.Text, nullable=False))
    op.create_table(
        "episodes", sa.Column("id", sa.Integer, primary_key=True), sa.Column("env", sa.String(64), nullable=False),
        sa.Column("seed", sa.Integer), sa.Column("policy", sa.String(64), nullable=False),
        sa.Column("model_version", sa.Integer), sa.Column("episode_return", sa.Float, nullable=False),
        sa.Column("length", sa.Integer, nullable=False), sa.Column("success", sa.Boolean),
        sa.Column("truncated", sa.Boolean), _time("started_at"), _time("ended_at", nullable=True))
    op.create_index("ix_episodes_env", "episodes", ["env"])
    op.create_index("ix_episodes_policy", "episodes", ["policy"])
    op.create_table(
        "decisions", sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("episode_id", sa.Integer, sa.ForeignKey("episodes.id", ondelete="CASCADE"), nullable=False),
        sa.Column("step", sa.Integer, nullable=False), sa.Column("env", sa.String(64), nullable=False),
        sa.Column("task_id", sa.Integer, nullable=False), sa.Column("state", sa.String(64), nullable=False),
        sa.Column("observation", sa.Text, nullable=False), sa.Column("prompt", sa.Text, nullable=False),
        sa.Column("legal_actions", sa.JSON, nullable=False), sa.Column("chosen", sa.Integer, nullable=False),
        sa.Column("probs", sa.JSON, nullable=False), sa.Column("policy", sa.String(64), nullable=False),
        sa.Column("model_version", sa.Integer), sa.Column("reward", sa.Float, nullable=False),
        sa.Column("terminated", sa.Boolean, nullable=False), sa.Column("truncated", sa.Boolean, nullable=False),
        _time("created_at"))
    op.create_index("ix_decisions_episode_id", "decisions", ["episode_id"])
    op.create_index("ix_decisions_env_policy", "decisions", ["env", "policy"])
    op.create_table(
        "model_versions", sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("model_versions.id")),
        sa.Column("kind", sa.String(16), nullable=False), sa.Column("checkpoint_path", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False), sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("replaced_id", sa.Integer, sa.ForeignKey("model_versions.id")), _time("created_at"),
        _time("activated_at", nullable=True))
    op.create_index("ix_model_versions_status", "model_versions", ["status"])
    op.create_table(
        "training_runs", sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False), sa.Column("status", sa.String(16), nullable=False),
        sa.Column("config", sa.JSON, nullable=False), sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("model_version_id", sa.Integer, sa.ForeignKey("model_versions.id")), _time("started_at"),
        _time("ended_at", nullable=True))
    op.create_index("ix_training_runs_status", "training_runs", ["status"])
    op.create_table("orchestrator_state", sa.Column("key", sa.String(64), primary_key=True),
                    sa.Column("value", sa.JSON), _time("updated_at"))
    op.create_table(
        "events", sa.Column("id", sa.Integer, primary_key=True), _time("time"),
        sa.Column("kind", sa.String(32), nullable=False), sa.Column("message", sa.Text, nullable=False),
        sa.Column("data", sa.JSON, nullable=False))
    op.create_index("ix_events_time", "events", ["time"])
    op.bulk_insert(meta, [{"key": "schema_version", "value": "1"}])
