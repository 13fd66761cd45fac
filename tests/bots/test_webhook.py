"""The event webhook: authentication, limits, validation with dead letters, duplicates, Segment, and the
offline loop (no Slack credentials: cards to the console, decisions from the CLI)."""
from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

from tests.bot_harness import RULES, Service, sql_events
from tests.leadflow_cli import Leadflow


def test_requests_without_credentials_get_401_and_change_nothing(tmp_path):
    with Service(tmp_path, None) as svc:
        assert svc.send_events(sql_events("a"), token=None).status_code == 401
        assert svc.send_events(sql_events("a"), token="wrong").status_code == 401
        assert svc.service.store.count("events") == 0


def test_hmac_signature_is_accepted(tmp_path):
    with Service(tmp_path, None, webhook_secret="s3cret") as svc:
        body = json.dumps(sql_events("a")[0]).encode()
        ts = str(int(__import__("time").time()))
        sig = "sha256=" + hmac.new(b"s3cret", ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        r = svc.http.post("/v1/events", content=body, headers={"X-Leadflow-Signature": sig,
                                                                "X-Leadflow-Timestamp": ts})
        assert r.status_code == 200 and r.json() == {"id": "a-1", "status": "applied"}
        bad = svc.http.post("/v1/events", content=body, headers={"X-Leadflow-Signature": "sha256=00",
                                                                  "X-Leadflow-Timestamp": ts})
        assert bad.status_code == 401


def test_limits_validation_duplicates_and_dead_letters(tmp_path):
    with Service(tmp_path, None, max_body_bytes=2000) as svc:
        big = [{"id": f"x{i}", "lead": "a", "type": "page_view", "at": "2026-11-02T09:00:00Z",
                "data": {"pad": "x" * 100}} for i in range(30)]
        assert svc.send_events(big).status_code == 413
        r = svc.http.post("/v1/events", content=b"{not json", headers={"Authorization": "Bearer hook-token-123"})
        assert r.status_code == 400 and r.json()["status"] == "rejected" and "not JSON" in r.json()["reason"]
        r = svc.send_events({"id": "e1", "lead": "a", "type": "page_view", "at": "2026-11-02 09:00"})
        assert r.status_code == 400 and r.json()["field"] == "at" and "time zone" in r.json()["reason"]
        batch = [sql_events("a")[0], {"id": "e2", "lead": "a", "type": 7, "at": "2026-11-02T09:00:00Z"},
                 sql_events("a")[0]]
        r = svc.send_events(batch)
        assert r.status_code == 422
        assert [x["status"] for x in r.json()["results"]] == ["applied", "rejected", "duplicate"]
        assert r.json()["results"][1]["field"] == "type"
        dead = svc.service.store.dead_letters()
        assert len(dead) == 3 and {d["source"] for d in dead} == {"webhook"}
        assert any("{not json" in d["raw"] for d in dead)
        assert svc.send_events(sql_events("a")[0]).json()["status"] == "duplicate"
        assert svc.health()["ok"] is True


def test_a_streamed_body_is_read_whole_and_capped_and_only_post_is_allowed(tmp_path):
    """A body sent in chunks without a Content-Length is counted as it arrives (413 past the cap) and
    read to its end under it; another method gets 405 naming POST, and stores nothing."""
    auth = {"Authorization": "Bearer hook-token-123", "Content-Type": "application/json"}
    event = json.dumps(sql_events("s")[0]).encode()

    def chunks(body: bytes, size: int):  # noqa: ANN202 - httpx sends a generator as chunked
        for at in range(0, len(body), size):
            yield body[at:at + size]

    with Service(tmp_path, None, max_body_bytes=2000) as svc:
        r = svc.http.post("/v1/events", content=chunks(event, 7), headers=auth)
        assert r.status_code == 200 and r.json() == {"id": "s-1", "status": "applied"}
        r = svc.http.post("/v1/events", content=chunks(b"[" + b" " * 3000 + event + b"]", 500), headers=auth)
        assert r.status_code == 413 and "2000 bytes" in r.json()["error"]
        for method in ("GET", "PUT", "DELETE"):
            r = svc.http.request(method, "/v1/events", content=event, headers=auth)
            assert r.status_code == 405 and r.headers["allow"] == "POST", method
            assert "POST" in r.json()["error"]
        assert svc.service.store.count("events") == 1


def test_segment_identify_and_track(tmp_path):
    with Service(tmp_path, None) as svc:
        identify = {"type": "identify", "messageId": "m1", "userId": "u-9", "timestamp": "2026-11-02T09:00:00Z",
                    "traits": {"title": "VP Sales", "budget": 50000}}
        track = {"type": "track", "messageId": "m2", "userId": "u-9", "timestamp": "2026-11-02T09:05:00Z",
                 "event": "Demo Requested", "properties": {"plan": "pro"}}
        r = svc.send_events([identify, track])
        assert r.status_code == 200 and r.json()["results"][1]["stage"] == "sql"
        row = svc.service.store.conn.execute("SELECT type FROM events WHERE id = 'm2'").fetchone()
        assert row[0] == "demo_requested"


def test_offline_loop_console_cards_and_cli_decisions(tmp_path):
    with Service(tmp_path, None) as svc:
        svc.send_events(sql_events("a"))
        deadline = __import__("time").time() + 10
        while not svc.console and __import__("time").time() < deadline:
            __import__("time").sleep(0.02)
        assert svc.console and "[card] new SQL a" in svc.console[0] and "leadflow sql accept 1" in svc.console[0]
        assert svc.http.post("/slack/events", content=b"{}").status_code == 503
        settings = svc.settings
    cli = Leadflow(settings.db, settings.rules)
    listed = json.loads(cli("sql", "list", "--json", check=True).stdout)
    assert [(x["assignment"], x["lead"], x["rep"]) for x in listed] == [(1, "a", "alice")]
    bad = cli("sql", "reject", "1", "--reason", "nope")
    assert bad.returncode == 1 and "not a reject reason" in bad.stderr and "no_budget" in bad.stderr
    ok = cli("sql", "reject", "1", "--reason", "not_now", "--comment", "call in Q1")
    assert ok.returncode == 0, ok.stderr
    again = cli("sql", "accept", "1")
    assert again.returncode == 1 and "already rejected" in again.stderr
    shown = json.loads(cli("leads", "show", "a", "--json", check=True).stdout)
    assert shown["stage"] == "recycled"
    assert [h["stage"] for h in shown["history"]] == ["new", "mql", "sql", "rejected", "recycled"]


def test_a_bad_rule_edit_never_stops_the_running_service(tmp_path):
    import time

    with Service(tmp_path, None) as svc:
        good = svc.service.pipeline.version
        rules = Path(svc.settings.rules) / "rules.yaml"
        text = rules.read_text()
        rules.write_text(text.replace("points: 30", "pionts: 30"))
        deadline = time.time() + 10
        while not svc.health()["rule_problems"] and time.time() < deadline:
            time.sleep(0.05)
        health = svc.health()
        assert any("UNKNOWN_KEY" in p and "pionts" in p for p in health["rule_problems"])
        assert health["rules_version"] == good  # the last good version keeps running
        assert svc.send_events(sql_events("a")).json()["results"][1]["stage"] == "sql"
        rules.write_text(text.replace("points: 30", "points: 35"))
        while svc.health()["rules_version"] == good and time.time() < deadline + 10:
            time.sleep(0.05)
        health = svc.health()
        assert health["rules_version"] != good and health["rule_problems"] == []


def test_a_console_card_carries_the_crm_link_when_the_rules_have_one(tmp_path):
    rules = RULES + 'crm: { record_url: "https://crm.example/leads/{lead}" }\n'
    with Service(tmp_path, None, rules=rules) as svc:
        svc.send_events(sql_events("a b"))
        svc.drain()
        assert svc.console and svc.console[0].endswith("Open in CRM: https://crm.example/leads/a%20b")
