"""Upgrades an experience store to the schema this Aegis writes, in place, and says what it did.

    python -m data.migrate --db runs/aegis.db

Opening a store (any Aegis command) does the same; this command does only that. A SQLite store is first copied
beside itself (`runs/aegis.db.v1-backup` for a v1 store); a PostgreSQL store gets no copy, so back it up first
(pg_dump). The upgrade is one transaction: if it fails, the store is left as it was.
"""

import argparse
import sys
from pathlib import Path

from data.store import DEFAULT_DB, ExperienceStore, StoreError, migration_scripts


def main(argv: list[str] | None = None) -> int:
    """Upgrades the store named by --db; returns the exit status (1 with a one-line reason if it cannot)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=DEFAULT_DB, help=f"SQLite file or database URL (default {DEFAULT_DB})")
    args = parser.parse_args(argv)
    if "://" not in args.db and not Path(args.db).exists():
        print(f"there is no experience store at {args.db}: nothing to upgrade", file=sys.stderr)
        return 1
    try:
        store = ExperienceStore(args.db)
    except StoreError as e:
        print(e, file=sys.stderr)
        return 1
    upgrade = store.schema_upgrade
    store.close()
    if upgrade is None:
        print(f"{args.db} already has the newest schema (revision {migration_scripts().get_current_head()})")
    else:
        kept = f"; the {upgrade.from_schema} store is kept at {upgrade.backup}" if upgrade.backup else ""
        print(f"{args.db}: upgraded from schema {upgrade.from_schema} to revision {upgrade.to_revision}{kept}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
