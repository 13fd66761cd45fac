"""The SQLite store: the only module that writes SQL.

The event log is the truth; lead rows are derived from it. Everything one event causes (the event,
the lead row, its decision, contributions, stage changes, outbox rows) is written inside one
transaction, and a batch of events is one transaction of per-event savepoints, so a crash loses
whole events (never half of one) and an event id is never applied twice.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

import sqlite_utils

from engine.intake import storable as _storable
from engine.rules import LeadState
from ._metrics import MetricsReads
from ._outbox import OutboxTable

SCHEMA_VERSION = 1


class Store(OutboxTable, MetricsReads):
    def __init__(self, path: str):
        self.path = path
        self._local = threading.local()  # one connection per thread: WAL gives readers and one writer
        self._all: list = []
        self.lock = threading.RLock()
        self.busy_timeout = 30.0  # seconds a connection waits for another writer; set before first use
        self._ensure_schema()

    @property
    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=self.busy_timeout, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL survives a crash of the process; only transaction(durable=True) waits for the disk
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            self._local.db = sqlite_utils.Database(conn)
            self._all.append(conn)
        return conn

    @property
    def db(self) -> sqlite_utils.Database:
        self.conn  # noqa: B018 - make sure this thread has its connection
        return self._local.db

    def close(self) -> None:
        for conn in self._all:
            conn.close()
        self._all.clear()
        self._local = threading.local()

    # -- schema -----------------------------------------------------------------------------------
    def _ensure_schema(self) -> None:
        db = self.db
        with self.transaction():
            if "events" not in db.table_names():
                db["events"].create({"seq": int, "id": str, "lead": str, "type": str, "at": float, "at_text": str,
                                     "data": str, "source": str, "received_at": float}, pk="seq")
                db["events"].create_index(["id"], unique=True)
                db["events"].create_index(["lead", "at"])
                db["events"].create_index(["type"])
            if "leads" not in db.table_names():
                db["leads"].create({"id": str, "stage": str, "score": float, "fit": float, "engagement": float,
                                    "owner": str, "disqualified": str, "created_at": float, "updated_at": float,
                                    "rules_version": str, "state": str}, pk="id")
                db["leads"].create_index(["stage"])
            if "contributions" not in db.table_names():
                db["contributions"].create({"id": int, "event_id": str, "lead": str, "rule": str, "points": float,
                                            "at": float}, pk="id")
                db["contributions"].create_index(["lead"])
            if "stage_history" not in db.table_names():
                db["stage_history"].create({"id": int, "lead": str, "from_stage": str, "to_stage": str, "at": float,
                                            "reason": str, "rule": str, "rules_version": str, "event_id": str},
                                           pk="id")
                db["stage_history"].create_index(["lead"])
                db["stage_history"].create_index(["to_stage", "at"])
            if "decisions" not in db.table_names():
                db["decisions"].create({"event_id": str, "lead": str, "at": float, "rules_version": str,
                                        "trace": str}, pk="event_id")
                db["decisions"].create_index(["lead"])
            if "dead_letters" not in db.table_names():
                db["dead_letters"].create({"id": int, "received_at": float, "source": str, "line": int,
                                           "raw": str, "reason": str, "field": str}, pk="id")
            if "rule_versions" not in db.table_names():
                db["rule_versions"].create({"version": str, "loaded_at": float, "files": str}, pk="version")
            self._outbox_schema()
            if "assignments" not in db.table_names():
                db["assignments"].create({"id": int, "lead": str, "rep": str, "channel": str, "status": str,
                                          "why": str, "attempt": int, "assigned_at": float, "remind_at": float,
                                          "due_at": float, "decided_at": float, "decided_by": str, "reason": str,
                                          "comment": str}, pk="id")
                db["assignments"].create_index(["lead"])
                db["assignments"].create_index(["rep", "status"])
                db["assignments"].create_index(["status", "due_at"])
            if "feedback" not in db.table_names():
                db["feedback"].create({"id": int, "assignment": int, "lead": str, "rep": str, "verdict": str,
                                       "reason": str, "comment": str, "by": str, "at": float}, pk="id")
                db["feedback"].create_index(["lead"])
            if "nurture" not in db.table_names():
                db["nurture"].create({"id": int, "lead": str, "track": str, "pc": int, "status": str, "next_at": float,
                                      "enrolled_at": float, "waiting_for": str, "updated_at": float}, pk="id")
                db["nurture"].create_index(["status", "next_at"])
                db["nurture"].create_index(["lead", "track"])
            if "nurture_log" not in db.table_names():
                db["nurture_log"].create({"id": int, "enrollment": int, "lead": str, "track": str, "pc": int,
                                          "op": str, "at": float, "detail": str}, pk="id")
                db["nurture_log"].create_index(["lead"])
            if "timers" not in db.table_names():
                db["timers"].create({"lead": str, "kind": str, "due_at": float}, pk=("lead", "kind"))
                db["timers"].create_index(["due_at"])
            if "proposals" not in db.table_names():
                db["proposals"].create({"id": int, "dir": str, "created_at": float, "status": str, "report": str,
                                        "decided_by": str, "decided_at": float}, pk="id")
            if "schedule" not in db.table_names():
                db["schedule"].create({"name": str, "last_at": float}, pk="name")
            # reading the history lead by lead in time order is the metrics' hot path
            self.conn.execute("CREATE INDEX IF NOT EXISTS stage_history_lead_at ON stage_history (lead, at, id)")
            if "digest" not in db["events"].columns_dict:  # made before conflicts were told apart
                self.conn.execute("ALTER TABLE events ADD COLUMN digest TEXT")
            self.conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    # -- transactions -----------------------------------------------------------------------------
    @contextmanager
    def transaction(self, durable: bool = False) -> Iterator[None]:
        """durable: COMMIT returns once the WAL is on disk (FULL: one fsync), for commits someone is
        told about (webhook answers, reps' decisions, ingest). NORMAL ones survive a process crash."""
        with self.lock:
            if self.conn.in_transaction:
                yield
                return
            if durable:
                self.conn.execute("PRAGMA synchronous=FULL")  # not allowed inside a transaction
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                try:
                    yield
                    self.conn.execute("COMMIT")
                except BaseException:
                    if self.conn.in_transaction:  # also when COMMIT itself failed (I/O error, disk full)
                        self.conn.execute("ROLLBACK")
                    raise
            finally:
                if durable:
                    self.conn.execute("PRAGMA synchronous=NORMAL")

    @contextmanager
    def savepoint(self, name: str = "one_event") -> Iterator[None]:
        """Inside a transaction: what the block wrote is undone if it raises, and nothing else is."""
        self.conn.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            self.conn.execute(f"ROLLBACK TO {name}")
            self.conn.execute(f"RELEASE {name}")
            raise
        self.conn.execute(f"RELEASE {name}")

    # -- events and leads -------------------------------------------------------------------------
    def has_event(self, event_id: str) -> bool:
        return self.conn.execute("SELECT 1 FROM events WHERE id = ?", (event_id,)).fetchone() is not None

    def stored_event(self, event_id: str) -> tuple | None:
        """(digest, lead, type, at, data JSON) of the event with this id; digest is NULL for old rows."""
        return self.conn.execute("SELECT digest, lead, type, at, data FROM events WHERE id = ?", (event_id,)).fetchone()

    def load_state(self, lead_id: str) -> LeadState | None:
        row = self.conn.execute("SELECT state FROM leads WHERE id = ?", (lead_id,)).fetchone()
        return LeadState.from_json(json.loads(row[0])) if row else None

    def record(self, event: dict, at: float, source: str, state: LeadState, decision: Any,
               created: bool, digest: str | None = None) -> None:
        """Write one evaluated event and everything it caused (call inside a transaction)."""
        now = time.time()
        c = self.conn
        data = json.dumps(event.get("data") or {}, separators=(",", ":"))
        c.execute("INSERT INTO events (id, lead, type, at, at_text, data, source, received_at, digest) VALUES"
                  " (?,?,?,?,?,?,?,?,?)", (event["id"], event["lead"], event["type"], at, event["at"], data, source,
                                           now, digest))
        c.execute("INSERT INTO leads (id, stage, score, fit, engagement, owner, disqualified, created_at, updated_at,"
                  " rules_version, state) VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET"
                  " stage=excluded.stage, score=excluded.score, fit=excluded.fit, engagement=excluded.engagement,"
                  " owner=excluded.owner, disqualified=excluded.disqualified, updated_at=excluded.updated_at,"
                  " rules_version=excluded.rules_version, state=excluded.state",
                  (state.id, state.stage, state.score, state.fit, state.engagement, state.owner, state.disqualified,
                   at, at, decision.rules_version, json.dumps(state.to_json(), separators=(",", ":"))))
        c.execute("INSERT INTO decisions (event_id, lead, at, rules_version, trace) VALUES (?,?,?,?,?)",
                  (event["id"], state.id, at, decision.rules_version,
                   json.dumps(decision.trace(), separators=(",", ":"))))
        if decision.added:
            c.executemany("INSERT INTO contributions (event_id, lead, rule, points, at) VALUES (?,?,?,?,?)",
                          [(event["id"], state.id, rule, points, at) for rule, points in decision.added])
        if created:
            c.execute("INSERT INTO stage_history (lead, from_stage, to_stage, at, reason, rule, rules_version, event_id)"
                      " VALUES (?,?,?,?,?,?,?,?)", (state.id, None, "new", at, "first event", None,
                                                    decision.rules_version, event["id"]))
        for t in decision.transitions:
            c.execute("INSERT INTO stage_history (lead, from_stage, to_stage, at, reason, rule, rules_version, event_id)"
                      " VALUES (?,?,?,?,?,?,?,?)", (state.id, t["from"], t["to"], state.clock, t["reason"], t["rule"],
                                                    decision.rules_version, event["id"]))
            if t["to"] == "sql":
                self.add_outbox(f"route:{state.id}:{event['id']}", "route_sql", state.id,
                                {"lead": state.id, "event_id": event["id"], "score": state.score})

    def dead_letter(self, raw: str, reason: str, field: str, source: str, line: int | None) -> None:
        """Keep rejected input; lone surrogates become escapes (SQLite text must be valid UTF-8)."""
        self.conn.execute("INSERT INTO dead_letters (received_at, source, line, raw, reason, field) VALUES (?,?,?,?,?,?)",
                          (time.time(), _storable(source), line, _storable(raw), _storable(reason), _storable(field)))

    def note_rules(self, version: str, files: dict) -> None:
        with self.transaction():
            self.conn.execute("INSERT OR IGNORE INTO rule_versions (version, loaded_at, files) VALUES (?,?,?)",
                              (version, time.time(), json.dumps(files)))

    # -- reads ------------------------------------------------------------------------------------
    def lead_row(self, lead_id: str) -> dict | None:
        rows = list(self.db.query("SELECT * FROM leads WHERE id = ?", [lead_id]))
        return rows[0] if rows else None

    def history(self, lead_id: str) -> list[dict]:
        return list(self.db.query("SELECT from_stage, to_stage, at, reason, rule, rules_version, event_id"
                                  " FROM stage_history WHERE lead = ? ORDER BY id", [lead_id]))

    def decisions(self, lead_id: str) -> list[dict]:
        return list(self.db.query("SELECT d.event_id, d.at, d.rules_version, d.trace, e.type FROM decisions d"
                                  " JOIN events e ON e.id = d.event_id WHERE d.lead = ? ORDER BY e.seq", [lead_id]))

    def list_leads(self, stage: str | None = None, limit: int | None = None) -> list[dict]:
        sql = "SELECT id, stage, score, owner FROM leads"
        params: list = []
        if stage:
            sql += " WHERE stage = ?"
            params.append(stage)
        sql += " ORDER BY score DESC, id"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return list(self.db.query(sql, params))

    def stage_counts(self) -> dict[str, int]:
        return {row["stage"]: row["n"] for row in self.db.query("SELECT stage, count(*) AS n FROM leads GROUP BY stage")}

    def dead_letters(self, limit: int = 100) -> list[dict]:
        return list(self.db.query("SELECT * FROM dead_letters ORDER BY id DESC LIMIT ?", [limit]))

    def count(self, table: str) -> int:
        return self.db[table].count

    # -- outbox delivery: engine/store_outbox.py (inherited) -------------------------------------------

    # -- assignments and feedback -------------------------------------------------------------------
    def add_assignment(self, row: dict) -> int:
        cols = ", ".join(row)
        cur = self.conn.execute(f"INSERT INTO assignments ({cols}) VALUES ({', '.join('?' for _ in row)})",
                                list(row.values()))
        return cur.lastrowid

    def assignment(self, assignment_id: int) -> dict | None:
        rows = list(self.db.query("SELECT * FROM assignments WHERE id = ?", [assignment_id]))
        return rows[0] if rows else None

    def assignments(self, lead: str | None = None, status: str | None = None, rep: str | None = None) -> list[dict]:
        where, params = [], []
        for column, value in (("lead", lead), ("status", status), ("rep", rep)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = "SELECT * FROM assignments" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
        return list(self.db.query(sql, params))

    def close_assignment(self, assignment_id: int, status: str, at: float, by: str | None, reason: str | None,
                         comment: str | None) -> bool:
        """Decide a pending assignment; False when someone else already did (double click, retry, race)."""
        cur = self.conn.execute("UPDATE assignments SET status = ?, decided_at = ?, decided_by = ?, reason = ?,"
                                " comment = ? WHERE id = ? AND status = 'pending'",
                                (status, at, by, reason, comment, assignment_id))
        return cur.rowcount == 1

    def mark_reminded(self, assignment_id: int) -> bool:
        cur = self.conn.execute("UPDATE assignments SET remind_at = NULL WHERE id = ? AND remind_at IS NOT NULL",
                                (assignment_id,))
        return cur.rowcount == 1

    def open_counts(self) -> dict:
        return {r["rep"]: r["n"] for r in self.db.query("SELECT rep, count(*) AS n FROM assignments a JOIN leads l ON"
                                                         " l.id = a.lead WHERE a.status IN ('pending', 'accepted') AND"
                                                         " l.stage IN ('sql', 'accepted') AND rep IS NOT NULL GROUP BY rep")}

    def assignment_totals(self) -> dict:
        return {r["rep"]: r["n"] for r in self.db.query("SELECT rep, count(*) AS n FROM assignments WHERE rep IS NOT NULL"
                                                         " GROUP BY rep")}

    def due_assignments(self, now: float) -> list[dict]:
        return list(self.db.query("SELECT * FROM assignments WHERE status = 'pending' AND rep IS NOT NULL AND"
                                  " (due_at <= ? OR remind_at <= ?) ORDER BY id", [now, now]))

    def set_owner(self, lead: str, owner: str | None) -> None:
        row = self.conn.execute("SELECT state FROM leads WHERE id = ?", (lead,)).fetchone()
        if row is None:
            return
        state = json.loads(row[0])
        state["owner"] = owner
        self.conn.execute("UPDATE leads SET owner = ?, state = ? WHERE id = ?", (owner, json.dumps(state), lead))

    def add_feedback(self, row: dict) -> None:
        cols = ", ".join(row)
        self.conn.execute(f"INSERT INTO feedback ({cols}) VALUES ({', '.join('?' for _ in row)})", list(row.values()))

    # -- nurture and timers -------------------------------------------------------------------------
    def enroll(self, lead: str, track: str, at: float) -> int:
        cur = self.conn.execute("INSERT INTO nurture (lead, track, pc, status, next_at, enrolled_at, updated_at)"
                                " VALUES (?,?,0,'active',?,?,?)", (lead, track, at, at, at))
        return cur.lastrowid

    def active_enrollment(self, lead: str, track: str) -> dict | None:
        rows = list(self.db.query("SELECT * FROM nurture WHERE lead = ? AND track = ? AND status = 'active'",
                                  [lead, track]))
        return rows[0] if rows else None

    def due_enrollments(self, now: float, limit: int = 500) -> list[dict]:
        return list(self.db.query("SELECT * FROM nurture WHERE status = 'active' AND next_at <= ?"
                                  " ORDER BY next_at, id LIMIT ?", [now, limit]))

    def next_due(self, assignments: bool = True) -> float | None:
        """The earliest time something scheduled is due: nurture steps, timers and (optionally) SLAs."""
        sql = "SELECT min(t) FROM (SELECT min(next_at) AS t FROM nurture WHERE status = 'active'" \
              " UNION ALL SELECT min(due_at) FROM timers"
        if assignments:
            sql += " UNION ALL SELECT min(coalesce(remind_at, due_at)) FROM assignments WHERE status = 'pending'" \
                   " AND rep IS NOT NULL"
        row = self.conn.execute(sql + ")").fetchone()
        return row[0] if row else None

    def update_enrollment(self, enrollment_id: int, pc: int, status: str, next_at: float | None,
                          waiting_for: str | None, at: float) -> None:
        self.conn.execute("UPDATE nurture SET pc = ?, status = ?, next_at = ?, waiting_for = ?, updated_at = ?"
                          " WHERE id = ?", (pc, status, next_at, waiting_for, at, enrollment_id))

    def log_step(self, enrollment: dict, pc: int, op: str, at: float, detail: str) -> None:
        self.conn.execute("INSERT INTO nurture_log (enrollment, lead, track, pc, op, at, detail) VALUES (?,?,?,?,?,?,?)",
                          (enrollment["id"], enrollment["lead"], enrollment["track"], pc, op, at, detail))

    def nurture_steps(self, lead: str) -> list[dict]:
        return list(self.db.query("SELECT * FROM nurture_log WHERE lead = ? ORDER BY id", [lead]))

    def event_times(self, lead: str, types: set) -> dict:
        out: dict = {}
        if not types:
            return out
        marks = ",".join("?" for _ in types)
        for etype, at in self.conn.execute(f"SELECT type, at FROM events WHERE lead = ? AND type IN ({marks})"
                                           " ORDER BY at", [lead, *sorted(types)]):
            out.setdefault(etype, []).append(at)
        return out

    def set_timer(self, lead: str, kind: str, due_at: float | None) -> None:
        if due_at is None:
            self.conn.execute("DELETE FROM timers WHERE lead = ? AND kind = ?", (lead, kind))
        else:
            self.conn.execute("INSERT INTO timers (lead, kind, due_at) VALUES (?,?,?) ON CONFLICT(lead, kind)"
                              " DO UPDATE SET due_at = excluded.due_at", (lead, kind, due_at))

    def due_timers(self, now: float, limit: int = 1000) -> list[tuple]:
        return list(self.conn.execute("SELECT lead, kind, due_at FROM timers WHERE due_at <= ? ORDER BY due_at"
                                      " LIMIT ?", (now, limit)))

    def save_state(self, state: LeadState) -> None:
        self.conn.execute("UPDATE leads SET state = ?, stage = ?, owner = ? WHERE id = ?",
                          (json.dumps(state.to_json(), separators=(",", ":")), state.stage, state.owner, state.id))

    def add_proposal(self, directory: str, at: float, report: dict) -> int:
        return self.conn.execute("INSERT INTO proposals (dir, created_at, status, report) VALUES (?,?,?,?)",
                                 (directory, at, "open", json.dumps(report))).lastrowid

    def proposal(self, proposal_id: int) -> dict | None:
        rows = list(self.db.query("SELECT * FROM proposals WHERE id = ?", [proposal_id]))
        return rows[0] if rows else None

    def decide_proposal(self, proposal_id: int, status: str, by: str, at: float) -> bool:
        cur = self.conn.execute("UPDATE proposals SET status = ?, decided_by = ?, decided_at = ? WHERE id = ? AND"
                                " status = 'open'", (status, by, at, proposal_id))
        return cur.rowcount == 1

    def last_run(self, name: str) -> float | None:
        row = self.conn.execute("SELECT last_at FROM schedule WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def mark_run(self, name: str, at: float) -> None:
        self.conn.execute("INSERT INTO schedule (name, last_at) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET"
                          " last_at = excluded.last_at", (name, at))
