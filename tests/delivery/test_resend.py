"""A resent event is a duplicate however its sender wrote the same numbers (1.0 or 1), also against
digests stored by a release that told them apart. Real CLI, real SQLite file."""
from __future__ import annotations

import hashlib
import json
import sqlite3
from contextlib import closing

from tests.leadflow_cli import ev, ingest  # `cli`: the fixture in tests/conftest.py


def old_digest(lead: str, etype: str, at: float, data: dict) -> str:
    """The digest as the release before stored it (1.0 and 1 written apart)."""
    text = json.dumps([lead, etype, at, data], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def test_the_same_event_with_1_for_1_0_is_a_duplicate_and_a_changed_value_a_conflict(cli):
    proc, counts = ingest(cli, [ev("e1", n=1.0, deep={"x": [2.0, 0.5]})])
    assert counts["applied"] == 1
    proc, counts = ingest(cli, [ev("e1", n=1, deep={"x": [2, 0.5]}), ev("e1", n=1.0, deep={"x": [2.0, 0.5]}),
                                ev("e1", n=1.5, deep={"x": [2, 0.5]})])
    assert (counts["duplicates"], counts["conflicts"]) == (2, 1), proc.stderr


def test_digests_stored_before_the_change_still_make_resends_duplicates(cli):
    proc, counts = ingest(cli, [ev("o1", n=1.0, m={"y": 3.0})])
    assert counts["applied"] == 1
    with closing(sqlite3.connect(cli.db)) as conn:  # as the previous release stored it
        lead, etype, at, data = conn.execute("SELECT lead, type, at, data FROM events WHERE id = 'o1'").fetchone()
        conn.execute("UPDATE events SET digest = ? WHERE id = 'o1'", (old_digest(lead, etype, at, json.loads(data)),))
        conn.commit()
    proc, counts = ingest(cli, [ev("o1", n=1.0, m={"y": 3.0}), ev("o1", n=1, m={"y": 3}), ev("o1", n=2, m={"y": 3})])
    assert (counts["duplicates"], counts["conflicts"]) == (2, 1), proc.stderr
