"""Delivery isolation and failure classes: one bad outbox row never blocks the others, permanent
failures fail at once with their reason, transient ones back off, and the operator sees it all in
`leadflow outbox`. E-mail goes only to exactly one valid address (a real SMTP server on loopback);
outgoing webhooks are signed with a timestamp (a real receiver on loopback)."""
from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import textwrap
import time
import urllib.error
from email.message import Message
from pathlib import Path

import pytest

from leadflow.delivery import ChannelSender, ChannelSettings, DeliveryError, Dispatcher, RetryLater, slack_failure
from leadflow.delivery._failures import PERMANENT, TRANSIENT, classify
from leadflow.service import ManualClock
from leadflow.store import Store
from tests.leadflow_cli import T0, run
from tests.leadflow_cli import event_at as ev
from tests.leadflow_cli import ingest_events as ingest
from tests.leadflow_cli import mail_env as env_for
from tests.servers import Mailbox, running_smtp

# -- the table, one case per class ------------------------------------------------------------------

def _http(code: int, retry_after: str | None = None) -> urllib.error.HTTPError:
    headers = Message()
    if retry_after:
        headers["Retry-After"] = retry_after
    return urllib.error.HTTPError("http://127.0.0.1/hook", code, "x", headers, None)


CASES = [
    ("bad address", DeliveryError("bad_address", "two addresses"), PERMANENT),
    ("CR/LF in a header", DeliveryError("bad_header", "line break"), PERMANENT),
    ("payload cannot be built", DeliveryError("bad_payload", "x"), PERMANENT),
    ("missing placeholder", DeliveryError("missing_field", "x"), PERMANENT),
    ("SMTP 550 recipient refused", smtplib.SMTPRecipientsRefused({"a@x.example": (550, b"no such user")}), PERMANENT),
    ("SMTP 554 message refused", smtplib.SMTPDataError(554, b"rejected"), PERMANENT),
    ("SMTP 451 try later", smtplib.SMTPRecipientsRefused({"a@x.example": (451, b"later")}), TRANSIENT),
    ("SMTP server went away", smtplib.SMTPServerDisconnected("gone"), TRANSIENT),
    ("SMTP login refused (a setting to fix)", smtplib.SMTPAuthenticationError(535, b"bad login"), TRANSIENT),
    ("webhook 400", _http(400), PERMANENT),
    ("webhook 404", _http(404), PERMANENT),
    ("webhook 410", _http(410), PERMANENT),
    ("webhook 408", _http(408), TRANSIENT),
    ("webhook 429", _http(429, "7"), TRANSIENT),
    ("webhook 500", _http(500), TRANSIENT),
    ("webhook 503", _http(503), TRANSIENT),
    ("connection refused", urllib.error.URLError(ConnectionRefusedError(111, "refused")), TRANSIENT),
    ("reset", ConnectionResetError(104, "reset"), TRANSIENT),
    ("timeout", TimeoutError("timed out"), TRANSIENT),
    ("Slack channel_not_found", slack_failure(200, "channel_not_found"), PERMANENT),
    ("Slack invalid_blocks", slack_failure(200, "invalid_blocks"), PERMANENT),
    ("Slack invalid_arguments", slack_failure(200, "invalid_arguments"), PERMANENT),
    ("Slack not_in_channel", slack_failure(200, "not_in_channel"), PERMANENT),
    ("Slack is_archived", slack_failure(200, "is_archived"), PERMANENT),
    ("Slack msg_too_long", slack_failure(200, "msg_too_long"), PERMANENT),
    ("Slack 429", slack_failure(429, "ratelimited", "3"), TRANSIENT),
    ("Slack 500", slack_failure(500, "internal_error"), TRANSIENT),
    ("Slack 503 without JSON", slack_failure(503, None), TRANSIENT),
    ("Slack error nobody listed", slack_failure(200, "some_new_error"), TRANSIENT),
    ("a bug", TypeError("'NoneType' object is not subscriptable"), TRANSIENT),
]


@pytest.mark.parametrize("what, exc, expected", CASES, ids=[c[0] for c in CASES])
def test_each_failure_has_its_class(what, exc, expected):
    error = classify(exc)
    assert (PERMANENT if error.permanent else TRANSIENT) == expected, f"{what}: {error}"


def test_rate_limits_wait_exactly_retry_after():
    assert classify(_http(429, "7")).retry_after == 7
    assert isinstance(slack_failure(429, "ratelimited", "3"), RetryLater)
    assert slack_failure(429, "ratelimited", "3").retry_after == 3
    assert classify(_http(500)).retry_after is None  # plain backoff


# -- the dispatcher: isolation, through a real receiver ------------------------------------------------

def _raw_row(store: Store, key: str, kind: str, lead: str, payload_text: str) -> None:
    """A row as an older version could have written it (the store no longer writes such text)."""
    with store.transaction():
        store.conn.execute("INSERT INTO outbox (key, kind, lead, payload, created_at, status, attempts, next_at)"
                           " VALUES (?,?,?,?,?,?,?,?)", (key, kind, lead, payload_text, time.time(), "pending", 0, 0.0))


def test_one_bad_row_never_blocks_the_others(tmp_path, receiver):
    store = Store(str(tmp_path / "o.db"))
    clock = ManualClock(T0)
    sender = ChannelSender(ChannelSettings(webhook_url=receiver.url, webhook_secret="s"), store, clock=time.time)
    dispatcher = Dispatcher(store, [sender], clock)
    receiver.plan = {"gone": [(410, {})], "busy": [(503, {})], "slow": [(429, {"Retry-After": "120"})]}
    _raw_row(store, "legacy", "email", "legacy", '{"to": Infinity, "subject": "hi"}')  # SQLite's JSON refuses it
    _raw_row(store, "garbled", "webhook", "garbled", "{not json")
    with store.transaction():
        for lead in ("gone", "busy", "slow", "ok-1"):
            store.add_outbox(f"hook:{lead}", "webhook", lead, {"text": f"hello {lead}"})
        store.add_outbox("hook:inf", "webhook", "inf", {"amount": float("inf")})  # stored as text, sent as text
    assert dispatcher.run_once() == 2
    rows = {r["key"]: r for r in store.outbox()}
    assert {k: r["status"] for k, r in rows.items()} == {
        "legacy": "failed", "garbled": "failed", "hook:gone": "failed", "hook:busy": "pending",
        "hook:slow": "pending", "hook:ok-1": "done", "hook:inf": "done"}
    assert rows["legacy"]["last_error"].startswith("bad_address: the email attribute is float")
    assert rows["garbled"]["last_error"].startswith("bad_payload")
    assert rows["hook:gone"]["last_error"] == "http_refused: HTTP 410"
    assert rows["hook:busy"]["next_at"] == T0 + 2  # transient: backoff from 2 s
    assert rows["hook:slow"]["next_at"] == T0 + 120  # 429: exactly Retry-After
    assert all(r["attempts"] == 1 for r in rows.values())
    clock.now += 3
    assert dispatcher.run_once() == 1  # the 503 row again; nothing done or failed is sent twice
    assert sorted(receiver.leads()) == ["busy", "busy", "gone", "inf", "ok-1", "slow"]
    assert store.outbox_counts() == {"done": 3, "failed": 3, "pending": 1}


def test_webhooks_are_signed_over_timestamp_and_body(tmp_path, receiver):
    store = Store(str(tmp_path / "o.db"))
    sender = ChannelSender(ChannelSettings(webhook_url=receiver.url, webhook_secret="hooksecret"), store)
    with store.transaction():
        store.add_outbox("hook:1", "webhook", "L1", {"text": "hello"})
    Dispatcher(store, [sender]).run_once()
    headers, body = receiver.received[0]
    stamp = headers["X-Leadflow-Timestamp"]
    assert stamp.isdigit() and abs(int(stamp) - time.time()) < 300
    want = hmac.new(b"hooksecret", stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert headers["X-Leadflow-Signature"] == f"sha256={want}"
    assert headers["Idempotency-Key"] == "hook:1"
    assert hmac.new(b"hooksecret", body, hashlib.sha256).hexdigest() != want  # not the body alone any more


# -- e-mail and the worker, through the CLI --------------------------------------------------------

class Refusing(Mailbox):
    """A mail server that refuses some recipients: 550 (no such user) for nobody@, 451 (later) for busy@."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802, ANN001
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        if address.startswith("busy@"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"


@pytest.fixture
def mail():
    with running_smtp(Refusing()) as box:
        yield box


DRIP = textwrap.dedent("""\
    leadflow: 1
    events: { signup: a signup }
    nurture:
      - id: drip
        enroll: { event: signup }
        steps:
          - send: { channel: email, subject: "Hello {name}", text: "Hi {name}, how are things at {company|your team}?" }
          - send: { channel: email, subject: "About {company}", text: "More for {company}." }
    """)

ADDRESSES = {
    "good": "ann@acme.example",
    "list": "a@acme.example, b@acme.example",
    "named-comma": '"Doe, Jane" <jane@acme.example>',
    "crlf": "ann@acme.example\r\nBcc: evil@evil.example",
    "number": 42,
    "not-one": "ann at acme",
    "refused": "nobody@acme.example",
    "busy": "busy@acme.example",
}


def test_worker_until_delivers_what_it_can_and_the_operator_sees_the_rest(tmp_path, mail):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(DRIP)
    db = tmp_path / "n.db"
    env = env_for(mail)
    events = []
    for lead, address in ADDRESSES.items():
        events += [ev(f"{lead}-1", lead, "lead_updated", T0, {"name": "Ann", "company": "Acme", "email": address}),
                   ev(f"{lead}-2", lead, "signup", T0 + 60)]
    events += [ev("subj-1", "subject", "lead_updated", T0, {"name": "Eve\r\nBcc: evil@evil.example", "company": "Acme",
                                                             "email": "eve@acme.example"}),
               ev("subj-2", "subject", "signup", T0 + 60)]
    ingest(db, rules, events, env)
    store = Store(str(db))
    with store.transaction():  # a row whose delivery raises something nobody foresaw (its assignment is gone)
        store.add_outbox("card:999", "card", "ghost", {"assignment": 999})
    _raw_row(store, "legacy", "email", "good", '{"subject": "Legacy", "text": "x", "n": Infinity}')  # once jammed
    store.close()
    base = ["--db", str(db), "--rules", str(rules)]
    r = run(base + ["worker", "--until", "2026-12-31T00:00:00Z", "--json"], env)  # never crashes on one row
    assert json.loads(r.stdout)["delivered"] >= 3
    delivered = sorted(rcpt for rcpt, _ in mail.messages)
    assert delivered == [["ann@acme.example"]] * 3 + [["eve@acme.example"]]  # eve's 2nd only
    assert [m["Subject"] for _, m in mail.messages].count("Legacy") == 1
    assert Store(str(db)).outbox_status("legacy") == "done"
    failed = json.loads(run(base + ["outbox", "--failed", "--json"], env).stdout)
    reasons = {(row["lead"], row["key"].rsplit(":", 1)[-1]): row["last_error"].split(":")[0] for row in failed}
    for lead in ("list", "named-comma", "crlf", "number", "not-one"):
        assert reasons[(lead, "0")] == reasons[(lead, "1")] == "bad_address", lead
    assert reasons[("refused", "0")] == "smtp_refused"
    assert reasons[("subject", "0")] == "bad_header"
    assert all(row["attempts"] == 1 and row["status"] == "failed" for row in failed)  # at once, not for hours
    waiting = {row["key"]: row for row in json.loads(run(base + ["outbox", "--json"], env).stdout)
               if row["status"] == "pending"}
    assert waiting["card:999"]["last_error"].startswith("unexpected: TypeError")
    assert {k for k in waiting if k.startswith("nurture")} == {k for k in waiting if k != "card:999"}
    assert all(row["last_error"].startswith("smtp_busy") for k, row in waiting.items() if k != "card:999")
    text = run(base + ["outbox", "--failed"], env).stdout
    assert "bad_address: the email attribute holds more than one address" in text
    story = run(base + ["leads", "explain", "list"], env).stdout
    assert "failed" in story and "email not delivered: bad_address" in story


def test_a_missing_placeholder_holds_the_step_back_and_a_default_fills_it(tmp_path, mail):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(DRIP)
    db = tmp_path / "n.db"
    env = env_for(mail)
    ingest(db, rules, [ev("1", "L", "lead_updated", T0, {"name": "Ann", "email": "ann@acme.example"}),
                       ev("2", "L", "signup", T0 + 60)], env)  # no company
    run(["--db", str(db), "--rules", str(rules), "worker", "--until", "2026-12-31T00:00:00Z"], env)
    assert [(m["Subject"], m.get_payload().strip()) for _, m in mail.messages] == [
        ("Hello Ann", "Hi Ann, how are things at your team?")]  # the default; "About {company}" was not sent
    story = run(["--db", str(db), "--rules", str(rules), "leads", "explain", "L"], env).stdout
    assert "email not sent: no value for {company}" in story
    assert [r["key"] for r in Store(str(db)).outbox("email")] == ["nurture:1:0"]


def test_sql_list_with_an_sql_nobody_was_told_about(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(textwrap.dedent("""\
        leadflow: 1
        events: { demo_requested: a demo }
        scoring: { engagement: [ { id: demo, on: demo_requested, points: 80 } ] }
        stages:
          mql: { when: { score: { at_least: 50 } } }
          sql: { when: { score: { at_least: 60 } } }
        """))  # no reps, no routing, no fallback
    db = tmp_path / "s.db"
    ingest(db, rules, [ev("1", "L", "demo_requested", T0)])
    r = run(["--db", str(db), "--rules", str(rules), "sql", "list"])
    assert r.returncode == 0 and "L" in r.stdout and "(nobody)" in r.stdout
    listed = json.loads(run(["--db", str(db), "--rules", str(rules), "sql", "list", "--json"]).stdout)
    assert [(a["lead"], a["rep"], a["channel"]) for a in listed] == [("L", None, None)]


def test_outbox_command_on_an_empty_database(tmp_path):
    db = tmp_path / "e.db"
    Store(str(db)).close()
    r = run(["--db", str(db), "outbox", "--failed"])
    assert r.stdout == "" and "no failed deliveries" in r.stderr
    assert json.loads(run(["--db", str(db), "outbox", "--json"]).stdout) == []
    missing = run(["--db", str(Path(tmp_path) / "nope.db"), "outbox"], check=False)
    assert missing.returncode == 2


def test_the_claim_before_a_send_is_on_disk(tmp_path, receiver):
    """After a power loss the `sending` mark must still be there, or the resume path would not look for a
    message that may have left: the claim commits with synchronous=FULL, before the notifier is called."""
    store = Store(str(tmp_path / "c.db"))
    sender = ChannelSender(ChannelSettings(webhook_url=receiver.url), store, clock=time.time)
    with store.transaction():
        store.add_outbox("hook:one", "webhook", "one", {"text": "hello"})
    said: list = []
    store.conn.set_trace_callback(said.append)
    assert Dispatcher(store, [sender], ManualClock(T0)).run_once() == 1
    store.conn.set_trace_callback(None)
    claim = next(i for i, sql in enumerate(said) if sql.startswith("UPDATE outbox") and "sending" in sql)
    commit = said.index("COMMIT", claim)
    assert [sql for sql in said[:commit] if sql.startswith("PRAGMA synchronous")][-1] == "PRAGMA synchronous=FULL"
    assert receiver.leads() == ["one"]
