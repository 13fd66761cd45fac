"""Hostile and malformed events over real loopback HTTP (uvicorn, as `leadflow serve` runs it): one
bad item is answered alone and never takes its batch, the service or later requests with it; what
only leadflow may say is refused; `applied` is answered after a durable group commit."""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from tests.bot_harness import WEBHOOK_TOKEN, Service, sql_events

AUTH = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}


def ev(eid: str, lead: str = "L", etype: str = "page_view", at: str = "2026-11-02T09:00:00Z", **data) -> dict:
    return {"id": eid, "lead": lead, "type": etype, "at": at, "data": data}


def post(svc: Service, body: bytes | str) -> httpx.Response:
    return svc.http.post("/v1/events", content=body if isinstance(body, bytes) else body.encode(), headers=AUTH)


def stored(svc: Service) -> list[str]:
    return [r[0] for r in svc.service.store.conn.execute("SELECT id FROM events ORDER BY seq")]


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_one_bad_item_is_answered_alone_and_the_batch_goes_on(tmp_path):
    deep = '{"id": "d1", "lead": "L", "type": "page_view", "at": "2026-11-02T09:00:00Z", "data": {"x": ' + \
        "[" * 995 + "]" * 995 + "}}"
    items = [json.dumps(ev("g1")),
             '{"id": "s\\ud800", "lead": "L", "type": "page_view", "at": "2026-11-02T09:00:00Z"}',
             '{"id": "s2", "lead": "L", "type": "page_view", "at": "2026-11-02T09:00:00Z", "data": {"r": "\\udfff"}}',
             deep,
             '{"id": "b1", "lead": "M\xfcller", "type": "page_view", "at": "2026-11-02T09:00:00Z"}',
             '{"id": "n1", "lead": "L", "type": "deal_won", "at": "2026-11-02T09:00:00Z", "data": {"amount": 1e400}}',
             '{"id": "big", "lead": "L", "type": "page_view", "at": "2026-11-02T09:00:00Z", "data": {"pad": "' +
             "x" * 70000 + '"}}',
             '{"id": "t1" "lead": "L", "type": "page_view", "at": "2026-11-02T09:00:00Z"}',
             json.dumps(ev("g2", etype="demo_requested"))]
    body = ("[" + ",\n".join(items) + "]").encode("utf-8", "surrogateescape").replace(b"M\xc3\xbcller", b"M\xfcller")
    with Service(tmp_path, None) as svc:
        r = post(svc, body)
        assert r.status_code == 422, r.text
        results = r.json()["results"]
        assert [x["status"] for x in results] == ["applied"] + ["rejected"] * 7 + ["applied"]
        ids = [x["id"] for x in results]
        # 995 levels: Python 3.11's json gives up before the id is read, 3.13's parses it and the depth
        # check refuses it by its id; "nested too deeply" and rejected alone either way (below)
        assert ids[3] in (None, "d1")
        assert ids[:3] + ids[4:] == ["g1", "s\\ud800", "s2", None, "n1", None, None, "g2"]
        fields = [x.get("field") for x in results]
        assert fields[1:3] == ["id", "data.r"] and fields[5] == "data.amount"
        reasons = [x.get("reason", "") for x in results]
        assert "nested too deeply" in reasons[3] and "not UTF-8" in reasons[4] and "64 KB" in reasons[6]
        assert "not JSON" in reasons[7]
        assert stored(svc) == ["g1", "g2"]
        dead = [d["raw"] for d in svc.service.store.dead_letters()][::-1]
        assert len(dead) == 7 and dead[3] == '{"id": "b1", "lead": "M\\xfcller", "type": "page_view", ' \
                                              '"at": "2026-11-02T09:00:00Z"}'
        single = post(svc, items[5])  # one event: 400 with the field
        assert single.status_code == 400 and single.json()["field"] == "data.amount"
        broken = post(svc, "[" + items[0] + ", ")  # the array itself is broken: the whole body is refused
        assert broken.status_code == 400 and "not JSON" in broken.json()["error"]
        assert post(svc, json.dumps(ev("g3"))).json() == {"id": "g3", "status": "applied"}
        assert svc.health()["ok"] is True


def test_leadflows_own_types_and_ids_are_refused_from_outside(tmp_path):
    with Service(tmp_path, None) as svc:
        svc.send_events(sql_events("a"))
        for etype in ("sql_accepted", "sql_rejected", "sql_reassigned", "lead_disqualified", "lead_recycled",
                      "lead_reopened", "decay_tick"):
            r = svc.send_events(ev(f"x-{etype}", lead="a", etype=etype, reason="no_budget"))
            assert r.status_code == 400 and r.json()["field"] == "type", r.text
            assert "leadflow's own event type" in r.json()["reason"]
        for eid in ("fb-1", "fb-1-dq", "reopen:a:x", "tick:a:1", "nurture:1:0"):
            r = svc.send_events(ev(eid, lead="a"))
            assert r.status_code == 400 and r.json()["field"] == "id", r.text
        segment = {"type": "track", "messageId": "m1", "userId": "a", "event": "SQL Rejected",
                   "timestamp": "2026-11-02T09:00:00Z"}
        assert svc.send_events(segment).json()["field"] == "type"
        assert svc.send_events(ev("w1", lead="a", etype="deal_won", amount=5000)).json()["stage"] == "won"
        assert svc.service.store.load_state("a").stage == "won"


def test_conflicts_and_ids_that_are_not_strings(tmp_path):
    with Service(tmp_path, None) as svc:
        assert svc.send_events(ev("e1", etype="lead_updated", title="VP")).status_code == 200
        again = svc.send_events(ev("e1", etype="lead_updated", title="VP"))
        assert again.status_code == 200 and again.json() == {"id": "e1", "status": "duplicate"}
        changed = svc.send_events(ev("e1", etype="lead_updated", title="CEO"))
        assert changed.status_code == 409
        assert changed.json()["status"] == "conflict" and changed.json()["field"] == "id"
        batch = svc.send_events([ev("e1", title="CEO"), ev("e2")])
        assert batch.status_code == 422 and [x["status"] for x in batch.json()["results"]] == ["conflict", "applied"]
        seven = svc.send_events({"id": 7, "lead": "L", "type": "page_view", "at": "2026-11-02T09:00:00Z"})
        assert seven.status_code == 400 and seven.json()["id"] == 7 and 'send "7"' in seven.json()["reason"]
        for lead in (" L", "L\u200b", "L\n"):
            r = svc.send_events(ev("e3", lead=lead))
            assert r.status_code == 400 and r.json()["field"] == "lead", lead
        dead = svc.service.store.dead_letters()
        assert sum(d["field"] == "id" and "different event" in d["reason"] for d in dead) == 2
        assert svc.service.store.load_state("L").attrs == {"title": "VP"}


def test_times_far_ahead_of_the_wall_clock_are_refused(tmp_path):
    now = datetime.now(timezone.utc)
    with Service(tmp_path, None) as svc:
        ahead = svc.send_events(ev("f1", at=iso(now + timedelta(days=2))))
        assert ahead.status_code == 400 and ahead.json()["field"] == "at" and "future" in ahead.json()["reason"]
        assert svc.send_events(ev("f2", at=iso(now + timedelta(hours=1)))).status_code == 200
        assert svc.send_events(ev("f3", at="1969-07-20T20:17:00Z")).json()["field"] == "at"
    (tmp_path / "wide").mkdir()
    with Service(tmp_path / "wide", None, max_future=3 * 86400) as svc:  # the margin is a setting
        assert svc.send_events(ev("f1", at=iso(now + timedelta(days=2)))).status_code == 200


def test_attributes_are_capped_over_the_webhook_too(tmp_path):
    with Service(tmp_path, None) as svc:
        r = svc.send_events([ev(f"u{i}", etype="lead_updated", **{f"k{i}_{j}": j for j in range(50)})
                             for i in range(5)])
        assert [x["status"] for x in r.json()["results"]] == ["applied"] * 4 + ["rejected"]
        assert "limit is 200" in r.json()["results"][4]["reason"]


@pytest.mark.parametrize("writer_mode", ["process", "thread"])
def test_concurrent_requests_share_one_durable_commit_and_are_answered_after_it(tmp_path, writer_mode):
    n = 30
    with Service(tmp_path, None, writer=writer_mode) as svc:
        writer = svc.app.state.writer
        answers: dict = {}

        def send(i: int) -> None:
            with httpx.Client(base_url=svc.url, timeout=30) as client:
                r = client.post("/v1/events", content=json.dumps(ev(f"c{i}", lead=f"L{i % 4}")), headers=AUTH)
                answers[i] = (r.status_code, r.json()["status"])

        # the database's write lock, taken by another connection: the writer (in its process or thread)
        # cannot begin its transaction, so the requests wait for it
        blocker = sqlite3.connect(svc.settings.db, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            threads = [threading.Thread(target=send, args=(i,)) for i in range(n)]
            for t in threads:
                t.start()
            deadline = time.time() + 20
            while writer.submitted < n and time.time() < deadline:
                time.sleep(0.01)
            assert writer.submitted == n
            assert answers == {}  # nobody is answered before the commit that holds their event
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        for t in threads:
            t.join(timeout=30)
        assert answers == {i: (200, "applied") for i in range(n)}
        assert writer.requests == n and writer.groups <= 3  # 30 requests, at most three fsyncs
        if writer_mode == "thread":
            store = svc.service.store
            synchronous = writer.group.submit(lambda: store.conn.execute("PRAGMA synchronous").fetchone()[0])
            assert synchronous.result(10) == 2  # FULL inside the group transaction: COMMIT returns after the fsync
        assert sorted(stored(svc)) == sorted(f"c{i}" for i in range(n))


@pytest.mark.slow
def test_webhook_rate_with_concurrent_senders(tmp_path):
    """The figure for group commit: 8 senders, one event per request, against the real `leadflow serve`
    process (`python -m pytest -m slow -s tests/test_webhook_hostile.py`)."""
    import subprocess

    from tests.bot_harness import RULES
    from tests.leadflow_cli import ROOT, clean_env, leadflow_command
    from tests.servers import free_port

    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "rules.yaml").write_text(RULES.replace("capacity: 5", "capacity: 100000"))
    port, senders, total = free_port(), 8, 4000
    proc = subprocess.Popen(leadflow_command("--db", tmp_path / "lf.db", "--rules", tmp_path / "rules", "serve",
                                             "--port", port), cwd=ROOT,
                            env=clean_env(LEADFLOW_WEBHOOK_TOKEN=WEBHOOK_TOKEN), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 20
        while True:
            try:
                if httpx.get(url + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                assert time.time() < deadline, "the service did not start"
                time.sleep(0.05)

        def send(t: int) -> None:
            with httpx.Client(base_url=url, timeout=30, headers=AUTH) as client:
                for i in range(total // senders):
                    r = client.post("/v1/events", content=json.dumps(ev(f"t{t}-{i}", lead=f"F{i % 500}")))
                    assert r.status_code == 200, r.text

        threads = [threading.Thread(target=send, args=(t,)) for t in range(senders)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rate = total / (time.perf_counter() - start)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print({"senders": senders, "events_per_s": round(rate)})
    assert rate > 0


def test_a_malformed_body_while_another_process_holds_the_database_is_503_then_a_dead_letter(tmp_path):
    """The dead letter of a broken body is written like any other write: when another connection holds
    the write lock past the busy timeout the answer is 503 (send again), not a 500; once free, 400."""
    import sqlite3

    svc = Service(tmp_path, None, run_worker=False)
    svc.service.store.busy_timeout = 0.3  # before the writer thread opens its connection
    with svc:
        holder = sqlite3.connect(svc.settings.db, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            started = time.monotonic()
            r = post(svc, b'[{"id":"x"')
            assert r.status_code == 503 and r.json()["error"].startswith("not JSON: ")
            assert time.monotonic() - started < 5
            r = post(svc, json.dumps(ev("g1")))
            assert r.status_code == 503  # the normal path answers the same
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        r = post(svc, b'[{"id":"x"')
        assert r.status_code == 400 and r.json()["error"].startswith("not JSON: ")
        assert [row[0] for row in svc.service.store.conn.execute("SELECT raw FROM dead_letters")] == ['[{"id":"x"']
        assert post(svc, json.dumps(ev("g1"))).status_code == 200 and stored(svc) == ["g1"]
