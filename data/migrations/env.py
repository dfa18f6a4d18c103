"""Alembic's entry point for the experience store: runs the revisions on the connection data.migrate passes in.

There is no alembic.ini: `data.migrate` builds the Alembic config in code and hands over an open connection whose
transaction it owns (SQLite: BEGIN IMMEDIATE, so the whole upgrade is one transaction no other writer interleaves).
SQLite keeps foreign keys on meanwhile: a revision that recreates a table others refer to (episodes, whose decisions
go with them ON DELETE CASCADE) must not use batch mode's copy-and-drop on it.
"""

from alembic import context

from data.schema import Base

context.configure(connection=context.config.attributes["connection"], target_metadata=Base.metadata)
with context.begin_transaction():
    context.run_migrations()
