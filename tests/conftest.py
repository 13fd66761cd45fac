"""Fixtures shared by several test modules: servers on loopback (see tests/servers.py) and the shipped
`leadflow` command on a fresh database (see tests/leadflow_cli.py, which also holds the environment
cleaner and the runner every CLI test uses)."""
from __future__ import annotations

import pytest

from leadflow.store import Store
from tests.leadflow_cli import Leadflow, small_setup
from tests.postgres import PostgresServer, database_for
from tests.servers import Mailbox, Receiver, running_smtp


@pytest.fixture(scope="session")
def postgres():
    """One real PostgreSQL server for the session (see tests/postgres.py)."""
    server = PostgresServer()
    yield server
    server.stop()


@pytest.fixture
def pg_url(postgres):
    """A fresh PostgreSQL database of its own for this test; its URL."""
    url = postgres.new_database()
    yield url
    postgres.drop(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """The test's database on each backend: a SQLite file path, then a PostgreSQL URL."""
    return database_for(request, tmp_path, "leadflow.db")


@pytest.fixture
def store(db_url):
    """A Store on each backend (db_url), closed after the test."""
    store = Store(db_url)
    yield store
    store.close()


@pytest.fixture
def routed_sql(tmp_path):
    """A LeadService on the bot harness's rules whose lead "a" became an SQL and was routed (assignment 1)."""
    yield from _routed_sql(tmp_path, str(tmp_path / "d.db"))


@pytest.fixture
def routed_sql_db(tmp_path, db_url):
    """`routed_sql` on each backend (db_url): SQLite, then PostgreSQL."""
    yield from _routed_sql(tmp_path, db_url)


def _routed_sql(tmp_path, db: str):
    from leadflow.service import LeadService
    from tests.bot_harness import RULES, sql_events

    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(RULES)
    service = LeadService(db, str(rules))
    try:
        for event in sql_events("a"):
            assert service.pipeline.apply(event).status == "applied"
        service.desk.route_pending()
        yield service
    finally:
        service.store.close()


@pytest.fixture
def bundled(tmp_path):
    """The bundled rules in one in-process LeadService on a manual clock (see tests/bundled_service.py)."""
    from tests.bundled_service import bundled_service

    with bundled_service(tmp_path) as service:
        yield service


@pytest.fixture
def bundled_db(tmp_path, db_url):
    """`bundled` on each backend (db_url): SQLite, then PostgreSQL."""
    from tests.bundled_service import bundled_service

    with bundled_service(tmp_path, db_url) as service:
        yield service


@pytest.fixture
def cli(tmp_path) -> Leadflow:
    """The shipped `leadflow` on tmp_path/t.db with a small rule set (tests.leadflow_cli.SMALL_RULES)."""
    return small_setup(tmp_path)


@pytest.fixture
def cli_db(tmp_path, db_url) -> Leadflow:
    """`cli` on each backend (db_url): SQLite, then PostgreSQL."""
    return small_setup(tmp_path, db_url)


@pytest.fixture
def smtp():
    with running_smtp(Mailbox()) as box:
        yield box


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()
