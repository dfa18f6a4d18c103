"""A throw-away PostgreSQL server for tests: initdb + pg_ctl on a private Unix socket, removed afterwards."""

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


def find_pg_bin() -> str | None:
    """Returns the directory holding initdb and pg_ctl, or None when PostgreSQL's server is not installed."""
    initdb = shutil.which("initdb") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))[::-1]), None)
    return os.path.dirname(os.path.realpath(initdb)) if initdb else None


def _as_server_user(cmd: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; Debian's package creates the "postgres" user for it.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@contextmanager
def postgres_server(port: int = 54329) -> Iterator[str]:
    """Starts a private server; yields its SQLAlchemy URL (database "aegis"); stops and deletes it on exit."""
    bin_dir = find_pg_bin()
    assert bin_dir, "PostgreSQL server binaries not found"
    root = tempfile.mkdtemp(prefix="aegis-pg-")
    data, socket_dir = os.path.join(root, "data"), os.path.join(root, "socket")
    os.makedirs(socket_dir)
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        for path in (root, socket_dir):
            os.chown(path, user.pw_uid, user.pw_gid)
    run = lambda *cmd: subprocess.run(_as_server_user(list(cmd)), check=True, capture_output=True, text=True)  # noqa: E731
    try:
        run(f"{bin_dir}/initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-sync")
        options = f"-k {socket_dir} -p {port} -c listen_addresses='' -c fsync=off"
        run(f"{bin_dir}/pg_ctl", "-D", data, "-o", options, "-l", os.path.join(root, "log"), "-w", "start")
        try:
            run(f"{bin_dir}/createdb", "-h", socket_dir, "-p", str(port), "-U", "postgres", "aegis")
            yield f"postgresql+psycopg://postgres@/aegis?host={socket_dir}&port={port}"
        finally:
            run(f"{bin_dir}/pg_ctl", "-D", data, "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)
