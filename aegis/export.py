"""`python -m aegis.export --version V`: export a registered model version (see `python -m hrm.export`).

hrm/ knows nothing of the experience store, so resolving a version to its checkpoint happens here; every other
option is hrm.export's.
"""

import sys
from dataclasses import dataclass

from data.store import DEFAULT_DB, ExperienceStore, StoreError
from hrm.cli import parse_args
from hrm.export import ExportArgs, run


@dataclass
class VersionExportArgs(ExportArgs):
    """Export a registered HRM version to ONNX or TorchScript as a Triton model repository."""

    version: int | None = None
    """The model version to export (`python demo.py -c models` lists them); default: the active one."""
    db: str = DEFAULT_DB
    """Experience store: a SQLite file path or any SQLAlchemy URL."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m aegis.export`; returns the process exit code."""
    args = parse_args(VersionExportArgs, argv, prog="python -m aegis.export")
    if args.checkpoint:
        return run(args, args.checkpoint)
    try:
        store = ExperienceStore(args.db)
        row = store.active_version() if args.version is None else store.model_version(args.version)
    except StoreError as e:
        print(f"aegis.export: {e}", file=sys.stderr)
        return 2
    if row is None:
        what = "no model is active" if args.version is None else f"there is no model version {args.version}"
        print(f"aegis.export: {what} in {args.db}; `python demo.py -c models` lists the versions", file=sys.stderr)
        return 2
    return run(args, row.checkpoint_path)


if __name__ == "__main__":
    sys.exit(main())
