"""Scratch databases for runs that must start empty and leave nothing behind (the benchmark's).

On PostgreSQL a scratch database is a schema of its own inside the database the URL names (only
the right to create a schema is needed, not to create databases), reached through the same URL with
its `search_path` set; it is dropped with everything in it afterwards. On SQLite it is a file in a
temporary folder.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from typing import Iterator
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from ._postgres import is_postgres_url


def with_search_path(url: str, schema: str) -> str:
    """The URL with PostgreSQL's search_path set to `schema` (a plain name)."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", schema):
        raise ValueError(f"not a plain schema name: {schema!r}")
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"]
    query.append(("options", f"-c search_path={schema}"))
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


@contextmanager
def scratch_database(url: str | None, name: str) -> Iterator[str]:
    """Yield the address of an empty database for one run: a schema `name` inside the PostgreSQL
    database at `url`, or (url None or a path) a new SQLite file; removed when the run ends."""
    if url is not None and is_postgres_url(url):
        import psycopg  # only PostgreSQL runs need it

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
            conn.execute(f'CREATE SCHEMA "{name}"')
        try:
            yield with_search_path(url, name)
        finally:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        return
    folder = tempfile.mkdtemp(prefix="leadflow-scratch-")
    try:
        yield os.path.join(folder, f"{name}.db")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
