"""Schema v2: each distinct text is stored once in `texts`; decisions refer to it by id, probs are float32 bytes.

Revision ID: 0002
Revises: 0001

Moves every decision's env, policy, observation, prompt and legal actions into `texts`, its probs into a float32
blob and its time into seconds since the epoch, in chunks of decisions by id (memory stays flat on big stores).
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from data.schema import insert_texts, legal_actions_text, pack_probs

revision = "0002"
down_revision = "0001"

DECISIONS_PER_CHUNK = 5_000
TEXT_COLUMNS = {"env": "env_id", "policy": "policy_id", "observation": "observation_id", "prompt": "prompt_id",
                "legal_actions": "legal_actions_id"}


def _epoch_seconds(moment: datetime) -> float:
    """Returns a stored time in seconds since the epoch (SQLite gives back naive UTC times)."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _move_decision_texts(connection: sa.Connection) -> None:
    """Fills the new id, blob and time columns of every decision from its v1 columns."""
    decisions = sa.table("decisions", sa.column("id", sa.Integer), sa.column("env", sa.String),
                         sa.column("policy", sa.String), sa.column("observation", sa.Text),
                         sa.column("prompt", sa.Text), sa.column("legal_actions", sa.JSON),
                         sa.column("probs", sa.JSON), sa.column("created_at", sa.DateTime(timezone=True)),
                         *(sa.column(name, sa.Integer) for name in TEXT_COLUMNS.values()),
                         sa.column("probs_f32", sa.LargeBinary), sa.column("recorded_at", sa.Float))
    fill = (sa.update(decisions).where(decisions.c.id == sa.bindparam("decision_id"))
            .values({name: sa.bindparam(name) for name in [*TEXT_COLUMNS.values(), "probs_f32", "recorded_at"]}))
    text_ids: dict[str, int] = {}
    last_id = 0
    while rows := connection.execute(sa.select(decisions).where(decisions.c.id > last_id)
                                     .order_by(decisions.c.id).limit(DECISIONS_PER_CHUNK)).mappings().all():
        texts = [{column: legal_actions_text(row[column]) if column == "legal_actions" else row[column]
                  for column in TEXT_COLUMNS} for row in rows]
        missing = {text for row in texts for text in row.values()} - text_ids.keys()
        text_ids.update(insert_texts(connection, missing))
        connection.execute(fill, [
            {"decision_id": row["id"], "probs_f32": pack_probs(row["probs"]),
             "recorded_at": _epoch_seconds(row["created_at"]),
             **{id_column: text_ids[row_texts[column]] for column, id_column in TEXT_COLUMNS.items()}}
            for row, row_texts in zip(rows, texts, strict=True)])
        last_id = rows[-1]["id"]


def upgrade() -> None:
    """Creates `texts`, moves every decision's texts there and drops the v1 columns; records schema version 2."""
    op.create_table("texts", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("hash", sa.LargeBinary(32), nullable=False), sa.Column("text", sa.Text, nullable=False))
    op.create_index("ix_texts_hash", "texts", ["hash"], unique=True)
    for id_column in TEXT_COLUMNS.values():
        op.add_column("decisions", sa.Column(id_column, sa.Integer))
    op.add_column("decisions", sa.Column("probs_f32", sa.LargeBinary))
    op.add_column("decisions", sa.Column("recorded_at", sa.Float))
    _move_decision_texts(op.get_bind())
    with op.batch_alter_table("decisions") as batch:  # SQLite: one copy of the table; PostgreSQL: ALTERs in place
        batch.drop_index("ix_decisions_env_policy")
        for column in [*TEXT_COLUMNS, "probs", "created_at"]:
            batch.drop_column(column)
        for id_column in TEXT_COLUMNS.values():
            batch.alter_column(id_column, existing_type=sa.Integer, nullable=False)
            batch.create_foreign_key(f"fk_decisions_{id_column}_texts", "texts", [id_column], ["id"])
        batch.alter_column("probs_f32", new_column_name="probs", existing_type=sa.LargeBinary, nullable=False)
        batch.alter_column("recorded_at", existing_type=sa.Float, nullable=False)
        batch.create_index("ix_decisions_env_policy", ["env_id", "policy_id"])
    op.execute(sa.text("UPDATE meta SET value = '2' WHERE key = 'schema_version'"))
