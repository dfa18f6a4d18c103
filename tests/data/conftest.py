"""Store fixtures: every store test runs on SQLite and, where its server is installed, on PostgreSQL."""

import pytest

from tests.data.postgres import find_pg_bin, postgres_server


@pytest.fixture(scope="session")
def postgres_url():
    """The URL of a throw-away PostgreSQL server shared by the session's tests."""
    if find_pg_bin() is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed; .ci/run installs them")
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh, empty database URL of each backend."""
    if request.param == "sqlite":
        yield str(tmp_path / "aegis.db")
        return
    base = request.getfixturevalue("postgres_url")
    empty_postgres(base)
    yield base


def empty_postgres(url: str) -> None:
    """Drops every table of the shared PostgreSQL database (tests leave stores of any schema revision behind)."""
    from sqlalchemy import MetaData, create_engine

    engine = create_engine(url)
    with engine.begin() as conn:
        tables = MetaData()
        tables.reflect(conn)
        tables.drop_all(conn)
    engine.dispose()
