"""End to end: the real service on loopback, real signed Slack requests, the Web API faked over HTTP."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from leadflow.core import parse_time
from tests.bot_harness import Clock, Service, click_payload, sql_events
from tests.slack_fake import SlackFake


@pytest.fixture
def fake():
    with SlackFake() as f:
        yield f


def posted_card(fake: SlackFake, index: int = 0) -> dict:
    call = fake.wait_for("chat.postMessage", index + 1, where=lambda c: c["args"].get("blocks"))[index]
    args = call["args"]
    msg = next(m for m in fake.history_of(args["channel"]) if m.get("metadata") == args.get("metadata"))
    buttons = args["blocks"][-1]["elements"]
    return {"channel": msg["channel"], "ts": msg["ts"], "value": buttons[0]["value"], "args": args}


def wait_until(check, timeout: float = 10.0):  # noqa: ANN001
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not reached")


def test_an_sql_gets_exactly_one_card_and_accept_updates_it(tmp_path, fake):
    with Service(tmp_path, fake) as svc:
        r = svc.send_events(sql_events("lead-1"))
        assert r.status_code == 200 and r.json()["results"][1]["stage"] == "sql"
        card = posted_card(fake)
        assert card["channel"] == "D0ALICE01"  # alice has the higher weight and the DM was opened for her
        text = json.dumps(card["args"]["blocks"])
        for expected in ("New SQL", "VP Sales", "Score 70", "senior", "Budget", "Accept", "Reject", "demo_requested"):
            assert expected in text
        r = svc.interactive(click_payload("sql_accept", card["value"], "U0ALICE01", card))
        assert r.status_code == 200
        update = fake.wait_for("chat.update")[0]["args"]
        assert update["ts"] == card["ts"] and "Accepted by <@U0ALICE01>" in json.dumps(update["blocks"])
        assert all(b["type"] != "actions" for b in update["blocks"])
        lead = svc.service.store.lead_row("lead-1")
        assert lead["stage"] == "accepted" and lead["owner"] == "alice"
        history = [h["to_stage"] for h in svc.service.store.history("lead-1")]
        assert history == ["new", "mql", "sql", "accepted"]
        svc.drain()  # everything due has run: a second one would be there by now
        assert len(fake.of("chat.postMessage")) == 1 and not fake.unexpected


def test_double_clicks_retries_and_races_make_one_decision(tmp_path, fake):
    with Service(tmp_path, fake) as svc:
        svc.send_events(sql_events("lead-1"))
        card = posted_card(fake)
        payload = click_payload("sql_accept", card["value"], "U0ALICE01", card)
        results = []
        threads = [threading.Thread(target=lambda: results.append(svc.interactive(payload).status_code))
                   for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [200] * 4
        fake.wait_for("chat.update")
        ephemeral = fake.wait_for("chat.postEphemeral", 3)
        assert all("already accepted" in c["args"]["text"] for c in ephemeral)
        assert len(svc.service.store.feedback_rows()) == 1
        events = svc.service.store.conn.execute("SELECT count(*) FROM events WHERE type = 'sql_accepted'").fetchone()
        assert events[0] == 1
        svc.drain()  # everything due has run: a second one would be there by now
        assert len(fake.of("chat.update")) == 1


def test_only_the_assigned_rep_or_a_manager_may_decide(tmp_path, fake):
    with Service(tmp_path, fake) as svc:
        svc.send_events(sql_events("lead-1"))
        card = posted_card(fake)
        svc.interactive(click_payload("sql_accept", card["value"], "U0BOB0001", card))
        note = fake.wait_for("chat.postEphemeral")[0]["args"]
        assert note["user"] == "U0BOB0001" and "assigned to alice" in note["text"]
        assert svc.service.store.assignment(int(card["value"]))["status"] == "pending"
        svc.interactive(click_payload("sql_accept", card["value"], "U0MGR0001", card))  # a manager may
        wait_until(lambda: svc.service.store.assignment(int(card["value"]))["status"] == "accepted")


@pytest.mark.parametrize("reason, stage, status", [("no_budget", "rejected", "rejected"),
                                                   ("student", "disqualified", "rejected"),
                                                   ("not_now", "recycled", "rejected"),
                                                   ("wrong_rep", "sql", "reassigned")])
def test_reject_with_a_reason_runs_its_consequence(tmp_path, fake, reason, stage, status):
    with Service(tmp_path, fake) as svc:
        svc.send_events(sql_events("lead-1"))
        card = posted_card(fake)
        svc.interactive(click_payload("sql_reject", card["value"], "U0ALICE01", card))
        view = fake.wait_for("views.open")[0]["args"]["view"]
        assert view["callback_id"] == "sql_reject_reason" and view["private_metadata"] == card["value"]
        options = [o["value"] for o in view["blocks"][1]["element"]["options"]]
        assert options == ["no_budget", "student", "not_now", "wrong_rep"]
        submit = {"type": "view_submission", "user": {"id": "U0ALICE01"}, "team": {"id": "T0TEAM001"},
                  "api_app_id": "A0APP0001", "trigger_id": "t",
                  "view": {**view, "id": "V0VIEW001", "state": {"values": {
                      "reason": {"reason": {"type": "static_select", "selected_option": {"value": reason}}},
                      "comment": {"comment": {"type": "plain_text_input", "value": "called them"}}}}}}
        r = svc.interactive(submit)
        assert r.status_code == 200 and r.text in ("", "{}")
        wait_until(lambda: svc.service.store.assignment(int(card["value"]))["status"] == status)
        lead = svc.service.store.lead_row("lead-1")
        assert lead["stage"] == stage
        update = fake.wait_for("chat.update")[0]["args"]
        assert "called them" in json.dumps(update["blocks"])
        if reason == "wrong_rep":  # passed on to the next rep in the pool
            second = posted_card(fake, 1)
            assert second["channel"] == "D0BOB0001"
            assert svc.service.store.lead_row("lead-1")["owner"] == "bob"
        if reason == "student":
            assert lead["disqualified"] == "student"


def test_routing_skips_away_reps_and_uses_the_fallback_channel(tmp_path, fake):
    with Service(tmp_path, fake) as svc:
        svc.send_events(sql_events("lead-de", country="DE"))  # the DE pool is cara, who is away
        card = posted_card(fake)
        assert card["channel"] == "C0QUEUE01"
        assignment = svc.service.store.assignment(int(card["value"]))
        assert assignment["rep"] is None and "cara is away" in assignment["why"]


def test_slack_retries_and_signatures(tmp_path, fake):
    with Service(tmp_path, fake) as svc:
        mention = {"type": "app_mention", "user": "U0MGR0001", "text": "<@UBOT00001> pipeline this month",
                   "channel": "C0STATS01", "ts": "1700000001.000100"}
        assert svc.event(mention, "Ev0001").status_code == 200
        assert svc.event(mention, "Ev0001", headers={"X-Slack-Retry-Num": "1",
                                                     "X-Slack-Retry-Reason": "http_timeout"}).status_code == 200
        answer = fake.wait_for("chat.postMessage")[0]["args"]
        assert answer["channel"] == "C0STATS01" and answer["thread_ts"] == "1700000001.000100"
        assert "Pipeline, this month" in answer["text"]
        svc.drain()  # everything due has run: a second one would be there by now
        assert len(fake.of("chat.postMessage")) == 1  # the retry did not answer twice
        assert svc.event(mention, "Ev0002", secret="wrong-secret").status_code == 401
        assert svc.event(mention, "Ev0003", ts=int(time.time()) - 600).status_code == 401


def test_slash_command_stats_managers_see_the_team_reps_their_own(tmp_path, fake):
    with Service(tmp_path, fake) as svc:
        svc.send_events(sql_events("lead-1") + sql_events("lead-2") + sql_events("lead-3"))
        fake.wait_for("chat.postMessage", 3)
        owners = [svc.service.store.lead_row(f"lead-{i}")["owner"] for i in (1, 2, 3)]
        assert owners == ["alice", "alice", "bob"]  # weights 2:1
        r = svc.command("stats by rep", "U0MGR0001")
        assert r.status_code == 200
        body = r.json()
        text = json.dumps(body["blocks"])
        assert body["response_type"] == "ephemeral" and "SQL 3" in text and "alice" in text and "bob" in text
        mine = json.dumps(svc.command("stats", "U0BOB0001").json()["blocks"])
        assert "for bob" in mine and "SQL 1" in mine and "alice" not in mine
        stranger = svc.command("stats", "U0STRANGR").json()
        assert "Only managers and reps" in json.dumps(stranger["blocks"])
        why = json.dumps(svc.command("why was lead-1 an SQL", "U0MGR0001").json()["blocks"])
        assert "lead-1 is SQL" in why and "stages.sql" in why
        nobody = svc.command("stats by colour", "U0MGR0001").json()  # no lead has a colour
        assert nobody["response_type"] == "ephemeral" and "UNKNOWN" not in json.dumps(nobody)
        assert "no lead has an attribute 'colour'" in json.dumps(nobody["blocks"])


def test_rate_limited_card_is_retried_after_retry_after_and_posted_once(tmp_path, fake):
    fake.fail_next["chat.postMessage"] = (429, 1)
    with Service(tmp_path, fake) as svc:
        svc.send_events(sql_events("lead-1"))
        calls = fake.wait_for("chat.postMessage", timeout=15)
        failed = [c for c in fake.calls if c["method"] == "chat.postMessage" and c.get("failed")]
        assert len(failed) == 1 and calls[0]["at"] - failed[0]["at"] >= 0.9
        svc.drain()  # everything due has run: a second one would be there by now
        assert len(fake.of("chat.postMessage")) == 1


def test_a_crash_after_slack_accepted_the_card_does_not_post_it_twice(tmp_path, fake):
    with Service(tmp_path, fake, run_worker=False) as svc:
        svc.send_events(sql_events("lead-1"))
        service = svc.service
        service.desk.route_pending()
        row = service.store.outbox("card")[0]
        # What a crash leaves: Slack got the card (it is in the channel's history with our key),
        # but the process died before the outbox row was marked done.
        with service.store.transaction():
            service.store.outbox_sending(row["id"])
        ts = f"{time.time():.6f}"
        fake.messages["D0ALICE01"] = [{"channel": "D0ALICE01", "text": "card", "ts": ts,
                                       "metadata": {"event_type": "leadflow", "event_payload": {"key": row["key"]}}}]
        assert service.dispatcher.run_once() == 1
        assert fake.of("chat.postMessage") == [] and fake.of("conversations.history")
        assert service.store.outbox_result(row["key"])["ts"] == ts


def test_sla_reminds_reassigns_then_escalates(tmp_path, fake):
    clock = Clock(parse_time("2026-11-02T09:00:00Z"))
    with Service(tmp_path, fake, clock=clock) as svc:
        svc.send_events(sql_events("lead-1"))
        first = posted_card(fake)
        clock.now += 2.5 * 3600  # past remind_at (50% of 4h)
        svc.service.wake.set()
        reminder = fake.wait_for("chat.postMessage", 2)[1]["args"]
        assert reminder["thread_ts"] == first["ts"] and "Reminder" in reminder["text"]
        clock.now += 2 * 3600  # past accept_within: reassigned to bob
        svc.service.wake.set()
        second = posted_card(fake, 1)
        assert second["channel"] == "D0BOB0001"
        expired = fake.wait_for("chat.update")[0]["args"]
        assert expired["ts"] == first["ts"] and "Not answered in time" in json.dumps(expired["blocks"])
        clock.now += 5 * 3600  # bob lets it lapse too: escalate_after 2 -> the managers' channel
        svc.service.wake.set()
        escalation = fake.wait_for("chat.postMessage", where=lambda c: c["args"]["channel"] == "C0MANAGER")[0]
        assert "lead-1" in escalation["args"]["text"]
        statuses = [a["status"] for a in svc.service.store.assignments(lead="lead-1")]
        assert statuses[:2] == ["expired", "expired"]


def test_app_home_lists_open_sqls_with_countdown(tmp_path, fake):
    with Service(tmp_path, fake) as svc:
        svc.send_events(sql_events("lead-1"))
        posted_card(fake)
        svc.event({"type": "app_home_opened", "user": "U0ALICE01", "channel": "D0ALICE01", "tab": "home"}, "Ev0100")
        view = fake.wait_for("views.publish")[0]["args"]
        assert view["user_id"] == "U0ALICE01" and "lead-1" in json.dumps(view["view"]) and "h left" in json.dumps(view["view"])


def test_stats_answers_come_with_a_chart_uploaded_in_three_calls(tmp_path, fake):
    with Service(tmp_path, fake) as svc:
        svc.send_events(sql_events("lead-1"))
        posted_card(fake)
        dm = {"type": "message", "channel_type": "im", "user": "U0MGR0001", "text": "stats by rep last 30 days",
              "channel": "D0MGR0001", "ts": "1700000002.000100"}
        svc.event(dm, "Ev0200")
        fake.wait_for("files.completeUploadExternal")
        asked = fake.of("files.getUploadURLExternal")[0]["args"]
        assert asked["filename"] == "pipeline.png" and int(asked["length"]) > 10_000
        upload = fake.of("upload")[0]["args"]
        assert upload["bytes"] == int(asked["length"])
        done = fake.of("files.completeUploadExternal")[0]["args"]
        assert done["channel_id"] == "D0MGR0001" and done["thread_ts"] == "1700000002.000100"
        answer = fake.wait_for("chat.postMessage", where=lambda c: c["args"]["channel"] == "D0MGR0001")[0]["args"]
        assert "last 30 days" in answer["text"] and "alice" in json.dumps(answer["blocks"])


def test_weekly_digest_is_posted_once_per_period(tmp_path, fake):
    from tests.bot_harness import RULES

    clock = Clock(parse_time("2026-11-09T08:00:00Z"))
    rules = RULES + 'digest: { channel: "C0DIGEST1", every: 7d }\n'
    with Service(tmp_path, fake, clock=clock, rules=rules) as svc:
        svc.send_events(sql_events("lead-1"))
        digest = fake.wait_for("chat.postMessage", where=lambda c: c["args"]["channel"] == "C0DIGEST1")[0]["args"]
        assert "Weekly pipeline digest, 2026-11-02 to 2026-11-09" in digest["text"]
        fake.wait_for("files.completeUploadExternal")
        clock.now += 3 * 86400
        svc.service.wake.set()
        svc.drain()  # everything due has run: a second one would be there by now
        assert len([c for c in fake.of("chat.postMessage") if c["args"]["channel"] == "C0DIGEST1"]) == 1
        clock.now += 5 * 86400
        svc.service.wake.set()
        fake.wait_for("chat.postMessage", 2, where=lambda c: c["args"]["channel"] == "C0DIGEST1")


def test_a_tuning_proposal_is_posted_and_applied_by_a_manager(tmp_path, fake):
    import shutil

    from tests.datasets import ROOT, write_real_sample
    from tests.leadflow_cli import leadflow

    example = ROOT / "rules" / "examples" / "x-education"
    rules = tmp_path / "rules"
    rules.mkdir()
    for f in (example / "start").glob("*.yaml"):
        shutil.copy(f, rules)
    sample = write_real_sample(tmp_path / "sample.csv", 300)
    leadflow("--db", tmp_path / "lf.db", "--rules", rules, "ingest", "--mapping", example / "mapping.yaml", sample,
             check=True)
    extra = "leadflow: 1\nmanagers: [U0MGR0001]\ntuning: { channel: C0MARKET1, min_labels: 50, capacity: 0.3 }\n"
    with Service(tmp_path, fake, rules=extra) as svc:
        before = svc.service.pipeline.version
        post = fake.wait_for("chat.postMessage", timeout=60,
                             where=lambda c: c["args"]["channel"] == "C0MARKET1")[0]["args"]
        text = json.dumps(post["blocks"])
        assert "Rule tuning proposal #1" in text and "AUC" in text and "cross-validated on 300 leads" in text
        msg = fake.messages["C0MARKET1"][0]
        card = {"channel": "C0MARKET1", "ts": msg["ts"]}
        svc.interactive(click_payload("proposal_apply", "1", "U0ALICE01", card))
        assert "Only managers" in fake.wait_for("chat.postEphemeral")[0]["args"]["text"]
        assert svc.service.store.proposal(1)["status"] == "open"
        svc.interactive(click_payload("proposal_apply", "1", "U0MGR0001", card))
        update = fake.wait_for("chat.update")[0]["args"]
        assert "Applied* by <@U0MGR0001>" in json.dumps(update["blocks"])
        row = svc.service.store.proposal(1)
        assert (row["status"], row["decided_by"]) == ("applied", "U0MGR0001")
        assert svc.service.pipeline.version != before
        assert (rules / "scoring.yaml").read_text() == (Path(row["dir"]) / "scoring.yaml").read_text()
        assert svc.health()["rules_version"] == svc.service.pipeline.version


def test_a_card_whose_answer_was_lost_is_not_posted_twice(tmp_path, fake):
    fake.lose_answer.add("chat.postMessage")
    with Service(tmp_path, fake) as svc:
        svc.send_events(sql_events("lead-1"))
        fake.wait_for("conversations.history", timeout=15)  # the retry looks before it posts again
        svc.drain()
        cards = [c for c in fake.calls if c["method"] == "chat.postMessage"]
        assert len(cards) == 1 and cards[0].get("lost_answer")
        assert svc.service.store.outbox_result("card:1")["ts"] == fake.messages["D0ALICE01"][0]["ts"]
