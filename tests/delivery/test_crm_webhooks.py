"""CRM webhooks (`webhooks:` in the rule files) through the shipped CLI to a receiver on loopback HTTP:
every stage change, assignment and decision arrives once per delivery id, signed with the secret
from the environment (checked here with hmac, not with leadflow's code), in the documented shape
(rules/webhook-payload.schema.json); a 410 fails the row for good, a 503 is retried, and nothing is
sent, signed or not, while the secret is missing."""
from __future__ import annotations

import hashlib
import hmac
import json
import textwrap
from pathlib import Path

import jsonschema
import pytest

from tests.leadflow_cli import ROOT, Leadflow, clean_env, rows, write
from tests.rule_samples import DESK_RULES
from tests.servers import Receiver

SECRET = "crm-secret-7f3a"
SCHEMA = json.loads((ROOT / "rules" / "webhook-payload.schema.json").read_text())
RULES = DESK_RULES.rstrip(" ") + """\
    webhooks:
      - name: crm
        url_env: CRM_HOOK_URL
        secret_env: CRM_HOOK_SECRET
        kinds: [stage_changed, sql_assigned, sql_accepted, sql_rejected]
    """
AT = "2026-03-02T10:00:00Z"


def events() -> list[dict]:
    """A: VP who asks for a demo (new, then mql and sql on the demo); B: a page view (new only)."""
    return [{"id": "a1", "lead": "A", "type": "lead_updated", "at": AT, "data": {"title": "VP Sales",
                                                                                "email": "a@x.example"}},
            {"id": "a2", "lead": "A", "type": "demo_requested", "at": "2026-03-02T11:00:00Z", "data": {}},
            {"id": "b1", "lead": "B", "type": "page_view", "at": AT, "data": {"url": "/"}}]


# (lead, from, to) of every stage change the events above make, worked out by hand from the rules
STAGE_CHANGES = {("A", None, "new"), ("A", "new", "mql"), ("A", "mql", "sql"), ("B", None, "new")}


@pytest.fixture
def setup(tmp_path: Path, receiver: Receiver) -> Leadflow:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(textwrap.dedent(RULES))
    return Leadflow(tmp_path / "t.db", rules, env=clean_env(CRM_HOOK_URL=receiver.url, CRM_HOOK_SECRET=SECRET))


def signed_ok(headers: dict, body: bytes, secret: str = SECRET) -> bool:
    """The receiver's own check: HMAC-SHA256 over '<timestamp>.' + body, as rules/WEBHOOKS.md says."""
    ts = headers.get("X-Leadflow-Timestamp", "")
    want = "sha256=" + hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return ts.isdigit() and hmac.compare_digest(headers.get("X-Leadflow-Signature", ""), want)


def bodies(receiver: Receiver) -> list[dict]:
    return [json.loads(body) for _, body in receiver.received]


def worker(cli: Leadflow, *args: str, env: dict | None = None) -> dict:
    proc = cli("worker", *(args or ("--once",)), "--json", env=env, check=True)
    return json.loads(proc.stdout)


def test_every_change_arrives_once_signed_and_in_the_documented_shape(setup: Leadflow, receiver: Receiver):
    cli = setup
    cli("ingest", str(write(cli.dir / "e.jsonl", events())), "--json", check=True)
    worker(cli)  # routes A (sql_assigned) and delivers everything queued so far
    accepted = cli("sql", "accept", "A", "--as", "alice", "--json")
    assert accepted.returncode == 0, accepted.stderr
    worker(cli)
    worker(cli)  # nothing is left: a further pass sends nothing again
    got = bodies(receiver)
    assert all(signed_ok(h, b) for h, b in receiver.received)
    for (headers, _), body in zip(receiver.received, got):
        assert headers["X-Leadflow-Delivery"] == headers["Idempotency-Key"] == body["delivery_id"]
        assert headers["X-Leadflow-Kind"] == body["kind"]
        jsonschema.validate(body, SCHEMA)
    ids = [b["delivery_id"] for b in got]
    assert len(ids) == len(set(ids)) == 7  # 5 stage changes, one assignment, one accept
    stage = {(b["lead"], b["data"]["from"], b["data"]["to"]) for b in got if b["kind"] == "stage_changed"}
    assert stage == STAGE_CHANGES | {("A", "sql", "accepted")}  # the rep's accept moves the stage too
    assigned = [b for b in got if b["kind"] == "sql_assigned"]
    assert [(b["lead"], b["data"]["rep"], b["data"]["rep_email"]) for b in assigned] == [("A", "alice",
                                                                                            "alice@acme.example")]
    accept = [b for b in got if b["kind"] == "sql_accepted"]
    assert [(b["lead"], b["data"]["assignment"], b["lead_state"]["owner"]) for b in accept] == \
        [("A", assigned[0]["data"]["assignment"], "alice")]
    sql_entry = next(b for b in got if b["kind"] == "stage_changed" and b["data"]["to"] == "sql")
    assert (sql_entry["occurred_at"], sql_entry["data"]["event_id"]) == ("2026-03-02T11:00:00Z", "a2")


def test_resending_the_same_events_queues_nothing_new(setup: Leadflow, receiver: Receiver):
    cli = setup
    path = write(cli.dir / "e.jsonl", events())
    cli("ingest", str(path), "--json", check=True)
    worker(cli)
    first = len(receiver.received)
    again = json.loads(cli("ingest", str(path), "--json", check=True).stdout)
    assert again["duplicates"] == 3
    worker(cli)
    assert len(receiver.received) == first


def test_a_410_fails_the_row_for_good_and_a_503_is_retried(setup: Leadflow, receiver: Receiver):
    cli = setup
    receiver.plan = {"B": [(410, {})], "A": [(503, {"Retry-After": "1"})]}
    cli("ingest", str(write(cli.dir / "e.jsonl", events()[:1] + events()[2:])), "--json", check=True)
    worker(cli)  # A's new: 503 (kept, retried); B's new: 410 (failed)
    failed = json.loads(cli("outbox", "--failed", "--json", check=True).stdout)
    assert [(r["lead"], r["kind"]) for r in failed] == [("B", "crm_webhook")]
    assert "410" in failed[0]["last_error"]
    worker(cli, "--until", "2100-01-01T00:00:00Z")  # fast-forward past the retry's backoff
    got = [(json.loads(b)["lead"], json.loads(b)["delivery_id"]) for _, b in receiver.received]
    assert [lead for lead, _ in got] == ["A", "B", "A"]  # B is never tried again
    assert got[0][1] == got[2][1]  # the retry is the same delivery
    assert rows(cli.db, "SELECT status FROM outbox WHERE kind = 'crm_webhook' AND lead = 'A'") == [("done",)]


def test_nothing_is_sent_without_the_secret_and_it_goes_out_once_it_is_set(setup: Leadflow, receiver: Receiver):
    cli = setup
    cli("ingest", str(write(cli.dir / "e.jsonl", events()[2:])), "--json", check=True)
    worker(cli, env=clean_env(CRM_HOOK_URL=receiver.url))
    assert receiver.received == []
    pending = rows(cli.db, "SELECT status, last_error FROM outbox WHERE kind = 'crm_webhook'")
    assert [(status, "CRM_HOOK_SECRET" in error) for status, error in pending] == [("pending", True)]
    worker(cli, "--until", "2100-01-01T00:00:00Z")
    assert len(receiver.received) == 1 and signed_ok(*receiver.received[0])


def test_a_wrong_secret_is_what_the_receiver_sees_as_a_bad_signature(setup: Leadflow, receiver: Receiver):
    """The check above can fail: a request signed with another secret does not pass it."""
    cli = setup
    cli("ingest", str(write(cli.dir / "e.jsonl", events()[2:])), "--json", check=True)
    worker(cli, env=clean_env(CRM_HOOK_URL=receiver.url, CRM_HOOK_SECRET="another"))
    assert len(receiver.received) == 1
    assert not signed_ok(*receiver.received[0]) and signed_ok(*receiver.received[0], secret="another")


def test_the_documented_example_matches_the_schema():
    text = (ROOT / "rules" / "WEBHOOKS.md").read_text()
    example = text.split("```json\n", 1)[1].split("```", 1)[0]
    jsonschema.validate(json.loads(example), SCHEMA)
