"""Nurture tracks through the real worker: a real SMTP server and a webhook receiver on loopback,
fast-forwarded time, opt-outs, branches, recycling, decay ticks, and a worker killed mid-track."""
from __future__ import annotations

import hashlib
import hmac
import json
import signal
import subprocess
import textwrap
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from leadflow.core import format_time
from leadflow.store import Store
from tests.leadflow_cli import ROOT, T0, leadflow_command, run
from tests.leadflow_cli import event_at as ev
from tests.leadflow_cli import mail_env as env_for


@dataclass
class OnDb:
    """The shipped `leadflow` on one test's database (a SQLite file or a PostgreSQL URL, see `db_url`)
    and rule directory, with the mail environment, and the store the test reads it through."""
    db: str
    rules: Path
    env: dict
    dir: Path
    _stores: list = field(default_factory=list)

    def __call__(self, *args: str) -> subprocess.CompletedProcess:
        return run(["--db", self.db, "--rules", str(self.rules), *args], self.env)

    def ingest(self, events: list) -> None:
        """`leadflow ingest` of `events` (dicts), which must all apply."""
        path = self.dir / f"in-{time.time_ns()}.jsonl"
        path.write_text("".join(json.dumps(e) + "\n" for e in events))
        self("ingest", str(path))

    @property
    def store(self) -> Store:
        """One store for the test's reads, opened on first use (closed by the fixture)."""
        if not self._stores:
            self._stores.append(Store(self.db))
        return self._stores[0]


@pytest.fixture
def on_db(db_url, tmp_path):
    """Make an OnDb on this test's database: on_db(env, rules=bundled rules)."""
    made: list[OnDb] = []

    def make(env: dict, rules: Path = ROOT / "rules") -> OnDb:
        made.append(OnDb(db_url, rules, env, tmp_path))
        return made[-1]

    yield make
    for worker in made:
        for store in worker._stores:
            store.close()


@pytest.fixture
def hooks():
    received: list = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a) -> None:
            return

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((dict(self.headers), body))
            self.send_response(200)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.received = received
    server.url = f"http://127.0.0.1:{server.server_address[1]}/nurture"
    yield server
    server.shutdown()


MANAGER = {"name": "Ann", "company": "Acme", "email": "ann@acme.example", "title": "Marketing Manager",
           "employees": 300, "country": "US", "industry": "saas"}


def test_bundled_education_track_end_to_end(on_db, smtp, hooks):
    lf = on_db(env_for(smtp, hooks))
    lf.ingest([ev("1", "L1", "lead_updated", T0, MANAGER), ev("2", "L1", "webinar_attended", T0 + 3600)])
    out = json.loads(lf("worker", "--until", "2026-12-31T00:00:00Z", "--json").stdout)
    assert out["delivered"] == 3
    subjects = [m["Subject"] for _, m in smtp.messages]
    assert subjects == ["How teams like Acme qualify leads in minutes", "Join our live session on lead scoring"]
    assert all(rcpt == ["ann@acme.example"] for rcpt, _ in smtp.messages)
    assert "Hi Ann," in smtp.messages[0][1].get_payload()
    headers, body = hooks.received[0]
    stamp = headers["X-Leadflow-Timestamp"]  # signed over "<timestamp>." + body: no replays later
    assert stamp.isdigit() and abs(int(stamp) - time.time()) < 300
    signed = stamp.encode() + b"." + body
    assert headers["X-Leadflow-Signature"] == "sha256=" + hmac.new(b"hooksecret", signed, hashlib.sha256).hexdigest()
    assert json.loads(body)["text"] == "L1 finished the education track"
    steps = [(r["op"], format_time(r["at"])) for r in lf.store.nurture_steps("L1")]
    assert steps[:3] == [("enroll", "2026-11-02T09:00:00Z"), ("wait", "2026-11-02T09:00:00Z"),
                         ("send", "2026-11-04T09:00:00Z")]  # 2 business days later
    assert [op for op, _ in steps][-3:] == ["send", "set", "done"]
    assert lf.store.load_state("L1").attrs["nurtured"] is True
    again = json.loads(lf("worker", "--until", "2027-01-31T00:00:00Z", "--json").stdout)
    assert again["delivered"] == 0 and len(smtp.messages) == 2  # nothing runs twice
    story = lf("leads", "explain", "L1").stdout
    assert "Nurture" in story and "mql_education" in story and "Join our live session" in story


def test_opt_out_stops_email_and_the_then_branch_runs_on_behaviour(on_db, smtp):
    lf = on_db(env_for(smtp))
    lf.ingest([ev("1", "L2", "lead_updated", T0, {**MANAGER, "do_not_email": "Yes"}),
               ev("2", "L2", "webinar_attended", T0 + 60)] +
              [ev(f"p{i}", "L2", "page_view", T0 + 86400 + i * 3600, {"url": "/pricing"}) for i in range(3)])
    r = lf("worker", "--until", "2026-12-31T00:00:00Z")
    assert smtp.messages == []  # do_not_email: "Yes" (a CRM export's value) stops every e-mail
    results = [json.loads(o["payload"]).get("result") for o in lf.store.outbox("email")]
    assert results and all(x == {"skipped": "do_not_email is Yes"} for x in results)
    details = [r["detail"] for r in lf.store.nurture_steps("L2")]
    assert "condition held: then" in details  # three page views within a week: the owner is told instead
    assert "[slack_owner] Ann is back on the website" in r.stderr


def test_recycled_lead_is_nurtured_and_climbs_again(on_db, smtp):
    lf = on_db(env_for(smtp))
    buyer = {**MANAGER, "title": "VP Sales", "budget": 50000, "pain": "spreadsheets"}
    lf.ingest([ev("1", "L3", "lead_updated", T0, buyer), ev("2", "L3", "demo_requested", T0 + 60)])
    lf("sql", "reject", "1", "--reason", "not_now")
    rejected_at = lf.store.assignments(lead="L3")[0]["decided_at"]
    lf("worker", "--until", format_time(rejected_at + 40 * 86400))
    assert lf.store.load_state("L3").stage == "recycled"  # a page view is not enough to come back
    assert [m["Subject"] for _, m in smtp.messages] == ["Checking in: is the timing better now?"]
    lf.ingest([ev("3", "L3", "page_view", rejected_at + 41 * 86400, {"url": "/"})])
    assert lf.store.load_state("L3").stage == "recycled"
    lf.ingest([ev("4", "L3", "pricing_inquiry", rejected_at + 42 * 86400)])
    state = lf.store.load_state("L3")
    assert state.stage == "sql" and state.tracks["recycle"].status == "exited"
    assert [h["to_stage"] for h in lf.store.history("L3")][-4:] == ["recycled", "new", "mql", "sql"]
    lf("worker", "--once")
    assert [a["status"] for a in lf.store.assignments(lead="L3")] == ["rejected", "pending"]  # routed again


def test_decay_tick_demotes_only_the_leads_that_can_change(on_db, smtp):
    lf = on_db(env_for(smtp))
    analyst = {"title": "Analyst", "employees": 60, "country": "US"}  # fit 25: engagement must carry it
    lf.ingest([ev("1", "A", "lead_updated", T0, analyst), ev("2", "A", "webinar_attended", T0 + 60),
               ev("3", "A", "demo_requested", T0 + 120),
               ev("4", "B", "lead_updated", T0, MANAGER), ev("5", "B", "webinar_attended", T0 + 60)])
    store = lf.store
    assert store.load_state("A").stage == "mql" and store.load_state("B").stage == "mql"
    timers = {lead: due for lead, _, due in store.due_timers(float("inf"))}
    assert set(timers) == {"A"}  # B's fit alone keeps it an MQL: no timer, never touched
    lf("worker", "--until", "2027-03-01T00:00:00Z")
    a = store.load_state("A")
    assert a.stage == "new" and a.score < 40
    ticks = store.sql("SELECT lead, at FROM events WHERE type = 'decay_tick' ORDER BY seq")
    assert [t[0] for t in ticks] == ["A"] and abs(ticks[0][1] - timers["A"]) < 1
    assert "fell below the demotion threshold" in store.history("A")[-1]["reason"]
    assert store.due_timers(float("inf")) == []  # the tick took its timer; A, demoted, has none again


def test_a_worker_killed_mid_track_resumes_and_runs_each_step_once(on_db, tmp_path, smtp):
    rules = tmp_path / "rules"
    rules.mkdir()
    steps = "\n".join(f"      - send: {{ channel: email, subject: \"step {i}\", text: \"body {i} for {{name}}\" }}\n"
                      f"      - wait: 1d" for i in range(30))
    (rules / "rules.yaml").write_text(textwrap.dedent("""\
        leadflow: 1
        events: { signup: a signup }
        nurture:
          - id: drip
            enroll: { event: signup }
            steps:
        """) + steps + "\n")
    lf = on_db(env_for(smtp), rules)
    lf.ingest([ev("1", "L", "lead_updated", T0, {"name": "Ann", "email": "ann@acme.example"}),
               ev("2", "L", "signup", T0 + 60)])
    cmd = leadflow_command("--db", lf.db, "--rules", rules, "worker", "--until", "2027-01-01T00:00:00Z")
    kills = 0
    for _ in range(3):  # kill it three times at arbitrary points
        proc = subprocess.Popen(cmd, cwd=ROOT, env=lf.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        target = len(smtp.messages) + 4
        deadline = time.time() + 30
        while len(smtp.messages) < target and time.time() < deadline and proc.poll() is None:
            time.sleep(0.005)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    lf("worker", "--until", "2027-01-01T00:00:00Z")
    assert kills >= 1
    ids = [m["Message-ID"] for _, m in smtp.messages]
    subjects = {m["Message-ID"]: m["Subject"] for _, m in smtp.messages}
    # every step delivered, in order; a kill between SMTP's answer and our commit can repeat the last
    # message, but always with the same Message-ID, so the recipient's mail system drops the copy
    unique = list(dict.fromkeys(ids))
    assert [subjects[i] for i in unique] == [f"step {i}" for i in range(30)]
    assert len(ids) - len(unique) <= kills
    sends = [r["pc"] for r in lf.store.nurture_steps("L") if r["op"] == "send"]
    assert sends == sorted(set(sends)) and len(sends) == 30  # each step ran exactly once
    assert all(m.get_payload().strip() == f"body {n} for Ann" for n, (_, m) in
               enumerate(smtp.messages[ids.index(i)] for i in unique))


def test_bundled_templates_read_well_without_lead_details():
    """The bundled e-mails declare defaults, so a lead known only by its address still gets a whole sentence."""
    from leadflow.rules import render

    templates = ROOT / "rules" / "templates"
    for name in ("case_study", "checking_in", "webinar_invite"):
        subject, text = render({"template": name}, str(templates), {"email": "ann@acme.example"})
        assert "{" not in subject + text and "  " not in subject and text.startswith("Hi there,"), name
    subject, _ = render({"template": "case_study"}, str(templates), {"company": "Acme"})
    assert subject == "How teams like Acme qualify leads in minutes"
