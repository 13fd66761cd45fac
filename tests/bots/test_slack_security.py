"""Slack's side of hostile input: the request URL caps and checks a body before anything reads it
and never logs one; lead data never becomes live mrkdwn (mentions, broadcasts, disguised links) in
anything the bot posts; lead stories are told only to whoever may read them, only where nobody else
reads along. Real service on loopback, real signed requests, the Web API fake records what reached
"Slack"."""
from __future__ import annotations

import json
import logging
import re
import time
import urllib.parse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow.bots.blocks import reject_modal
from leadflow.bots.mrkdwn import code, escape, mention
from leadflow.core import parse_time
from tests.bot_harness import Clock, Service, click_payload, sql_events
from tests.slack_fake import SlackFake

HOSTILE = "<!channel> <!here> <@U0MGR0001> <https://evil.example|Open CRM> & `x` *b*"
LIVE = re.compile(r"<[^<>]*>")  # what Slack reads as a control sequence in mrkdwn


@pytest.fixture
def fake():
    with SlackFake() as f:
        yield f


def _mrkdwn(value, out: list[str]) -> list[str]:  # noqa: ANN001
    """Every string Slack would read as mrkdwn in a call's arguments (plain_text is shown as is)."""
    if isinstance(value, dict):
        if value.get("type") == "mrkdwn" and isinstance(value.get("text"), str):
            out.append(value["text"])
        for key, item in value.items():
            if key != "text" or isinstance(item, (dict, list)):
                _mrkdwn(item, out)
    elif isinstance(value, list):
        for item in value:
            _mrkdwn(item, out)
    return out


def _posted_text(fake: SlackFake) -> list[str]:
    texts = []
    for method in ("chat.postMessage", "chat.update", "chat.postEphemeral", "views.publish"):
        for call in fake.of(method):
            args = call["args"]
            if isinstance(args.get("text"), str):  # a message's text is mrkdwn too (and the notification)
                texts.append(args["text"])
            _mrkdwn({k: v for k, v in args.items() if k != "text"}, texts)
    return texts


def _assert_inert(texts: list[str], allowed: set[str]) -> None:
    for text in texts:
        assert set(LIVE.findall(text)) <= allowed, text
        assert not re.search(r"&(?!amp;|lt;|gt;)", text), text


# ---- the request URL --------------------------------------------------------------------------------

def test_slack_bodies_are_capped_before_they_are_read(tmp_path, fake):
    with Service(tmp_path, fake) as svc:
        event = {"type": "app_mention", "user": "U0MGR0001", "channel": "C0STATS01", "ts": "1700000001.000100",
                 "text": "<@UBOT00001> pipeline " + "x" * 1_100_000}
        r = svc.event(event, "Ev0001")  # correctly signed: only the size is wrong
        assert r.status_code == 413

        def chunks():  # no Content-Length: the cap must count while streaming
            for _ in range(12):
                yield b"x" * 100_000

        r = svc.http.post("/slack/events", content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413
        assert svc.event({**event, "text": "<@UBOT00001> pipeline"}, "Ev0002").status_code == 200


def test_malformed_slack_bodies_get_4xx_never_500(tmp_path, fake):
    with Service(tmp_path, fake) as svc:
        signed_cases = {
            "not UTF-8": (b"\xff\xfe{\"type\": \"event_callback\"}", "application/json"),
            "not JSON": (b"{not json", "application/json"),
            "a JSON list": (b"[1, 2]", "application/json"),
            "a JSON string": (b"\"text\"", "application/json"),
            "deep nesting": (b"{\"a\":" * 50_000 + b"1" + b"}" * 50_000, "application/json"),
            "form payload not JSON": (b"payload=%7Bnot", "application/x-www-form-urlencoded"),
            "form payload a list": (b"payload=%5B1%5D", "application/x-www-form-urlencoded"),
        }
        for case, (body, ctype) in signed_cases.items():
            r = svc.slack(body, ctype)
            assert r.status_code == 400, (case, r.status_code, r.text[:200])
        assert svc.slack(b"\xff\xfe", "application/json", secret="wrong").status_code == 401
        headers = {"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=00", "Content-Type": "text/plain"}
        assert svc.http.post("/slack/events", content=b"x", headers=headers).status_code == 401
        assert svc.http.post("/slack/events", content=b"x").status_code == 401
        for stamp in (b"9" * 400, b"9" * 5000, "١٧٠٠٠٠٠٠٠٠".encode(), "¹⁷".encode(), b"0" * 13, b"-1"):
            r = svc.http.post("/slack/events", content=b"x", headers={"X-Slack-Request-Timestamp": stamp,
                                                                       "X-Slack-Signature": b"v0=00"})
            assert r.status_code == 401 and "X-Slack-Request-Timestamp" in r.json()["error"], (stamp[:20], r.text)
        late = svc.slack(b"{}", "application/json", ts=int(time.time()) - 301)  # signed, but too old
        assert late.status_code == 401 and "300 s" in late.json()["error"]
        assert svc.health()["ok"] is True


def test_request_bodies_never_reach_the_log(tmp_path, fake, caplog):
    caplog.set_level(logging.DEBUG, logger="slack_bolt")
    caplog.set_level(logging.DEBUG, logger="leadflow")
    caplog.set_level(logging.INFO)
    marker = "FORGED-BODY-7f3a"
    with Service(tmp_path, fake) as svc:
        forged = json.dumps({"type": "event_callback", "event": {"type": "app_mention", "text": marker +
                             "\n2026-01-01 INFO leadflow: all good"}}).encode()
        assert svc.slack(forged, "application/json", secret="not-the-secret").status_code == 401
        assert svc.slack(forged, "application/json", ts=int(time.time()) - 3600).status_code == 401
        # signed but handled by no listener: Bolt would log parts of it as "Unhandled request (...)"
        payload = click_payload("action_" + marker, "1", "U0ALICE01", {"ts": "1.0", "channel": "C0STATS01"})
        assert svc.interactive(payload).status_code == 404
    logged = caplog.text + "".join(str(r.msg) for r in caplog.records)
    assert marker not in logged and "all good" not in logged


# ---- escaping ---------------------------------------------------------------------------------------

def _hostile_lead(lead: str, at: str = "2026-11-02T09:00:00Z") -> list[dict]:
    return [{"id": f"{lead}-1<!here>", "lead": lead, "type": "lead_updated", "at": at,
             "data": {"name": f"Ann {HOSTILE}", "title": f"VP Sales {HOSTILE}", "budget": 20000, "country": HOSTILE,
                      "email": "<mailto:boss@corp.example|boss@corp.example>", "company": HOSTILE,
                      "employees": HOSTILE}},
            {"id": f"{lead}-2&<!channel>", "lead": lead, "type": "demo_requested", "at": at, "data": {}}]


def test_lead_data_never_reaches_slack_as_live_markup(tmp_path, fake):
    clock = Clock(parse_time("2026-11-02T09:00:00Z"))
    lead = "acme<!channel>&<@U0MGR0001>"
    with Service(tmp_path, fake, clock=clock) as svc:
        assert svc.send_events(_hostile_lead(lead)).status_code == 200
        card = fake.wait_for("chat.postMessage", where=lambda c: c["args"].get("blocks"))[0]["args"]
        shown = json.dumps(card["blocks"])
        assert "&lt;!channel&gt;" in shown and "&lt;https://evil.example|Open CRM&gt;" in shown  # shown, inert
        clock.now += 2.5 * 3600  # past remind_at: the reminder names the lead
        svc.service.wake.set()
        fake.wait_for("chat.postMessage", 2)
        svc.event({"type": "app_home_opened", "user": "U0ALICE01", "channel": "D0ALICE01", "tab": "home"}, "Ev1")
        fake.wait_for("views.publish")
        msg = fake.messages[card["channel"]][0]
        svc.interactive(click_payload("sql_reject", card["blocks"][-1]["elements"][0]["value"], "U0ALICE01",
                                      {"ts": msg["ts"], "channel": card["channel"]}))
        view = fake.wait_for("views.open")[0]["args"]["view"]
        submit = {"type": "view_submission", "user": {"id": "U0ALICE01"}, "team": {"id": "T0TEAM001"},
                  "api_app_id": "A0APP0001", "trigger_id": "t",
                  "view": {**view, "id": "V0VIEW001", "state": {"values": {
                      "reason": {"reason": {"type": "static_select", "selected_option": {"value": "no_budget"}}},
                      "comment": {"comment": {"type": "plain_text_input", "value": f"{HOSTILE}\n> <!everyone>"}}}}}}
        assert svc.interactive(submit).status_code == 200
        fake.wait_for("chat.update")
        dm = {"type": "message", "channel_type": "im", "user": "U0MGR0001", "text": "stats by country",
              "channel": "D0MGR0001", "ts": "1700000002.000100"}
        svc.event(dm, "Ev2")
        fake.wait_for("chat.postMessage", where=lambda c: c["args"]["channel"] == "D0MGR0001")
        fake.wait_for("files.completeUploadExternal")
    texts = _posted_text(fake)
    assert len(texts) >= 8
    _assert_inert(texts, allowed={"<@U0ALICE01>"})  # the only live mention: the rep who decided


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.text())
def test_escaped_text_has_no_markup_and_reads_back_as_itself(text):
    out = escape(text)
    assert "<" not in out and ">" not in out and not re.search(r"&(?!amp;|lt;|gt;)", out)
    assert out.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") == text  # Slack shows the text
    span = code(text)
    inner = span[1:-1]
    assert span.startswith("`") and span.endswith("`") and "`" not in inner and "\n" not in inner
    assert "<" not in inner and ">" not in inner
    assert mention(text) == f"<@{text}>" or "<" not in mention(text)


def test_only_well_formed_user_ids_become_mentions():
    assert mention("U0ALICE01") == "<@U0ALICE01>" and mention("W0ENTERPR1") == "<@W0ENTERPR1>"
    for text in ("U0A>|<!channel", "cli", "U", "<!here>", "u0alice01", None):
        assert "<" not in mention(text)


# ---- who sees a lead's story ------------------------------------------------------------------------

def _ask(svc, fake, user: str, text: str, channel: str, event_id: str, im: bool = True):  # noqa: ANN001
    event = {"type": "message" if im else "app_mention", "user": user, "text": text, "channel": channel,
             "ts": f"17000000{len(fake.calls):02d}.000100"}
    if im:
        event["channel_type"] = "im"
    assert svc.event(event, event_id).status_code == 200


def test_a_stranger_cannot_tell_an_existing_lead_from_an_unknown_one(tmp_path, fake):
    with Service(tmp_path, fake) as svc:
        svc.send_events(_hostile_lead("lead-1"))
        fake.wait_for("chat.postMessage")
        _ask(svc, fake, "U0STRANGR", "why was lead-1 an SQL", "D0STRANGR", "Ev1")
        _ask(svc, fake, "U0STRANGR", "why was lead-9 an SQL", "D0STRANGR", "Ev2")
        answers = [c["args"] for c in fake.wait_for("chat.postMessage", 2,
                                                    where=lambda c: c["args"]["channel"] == "D0STRANGR")]
        # delivered through the outbox: the two answers may reach Slack in either order
        known, unknown = sorted(answers, key=lambda a: "lead-1" not in json.dumps(a))
        strip = {k: v for k, v in known.items() if k not in ("thread_ts", "metadata")}
        other = {k: v for k, v in unknown.items() if k not in ("thread_ts", "metadata")}
        assert json.dumps(strip).replace("lead-1", "X") == json.dumps(other).replace("lead-9", "X")
        by_command = [svc.command(f"why was {lead} an SQL", "U0STRANGR").json() for lead in ("lead-1", "lead-9")]
        assert json.dumps(by_command[0]).replace("lead-1", "X") == json.dumps(by_command[1]).replace("lead-9", "X")


def test_strangers_cannot_read_why_a_lead_is_where_it_is(tmp_path, fake):
    with Service(tmp_path, fake) as svc:
        svc.send_events([sql_events("lead-1")[0]])  # an MQL nobody owns yet
        r = svc.command("why was lead-1 an SQL", "U0STRANGR").json()
        assert "not assigned to you" in json.dumps(r["blocks"])


def test_a_lead_story_asked_in_a_channel_is_answered_privately(tmp_path, fake):
    with Service(tmp_path, fake) as svc:
        svc.send_events(_hostile_lead("lead-1"))
        fake.wait_for("chat.postMessage")
        _ask(svc, fake, "U0MGR0001", "<@UBOT00001> why was lead-1 an SQL", "C0PUBLIC1", "Ev1", im=False)
        note = fake.wait_for("chat.postEphemeral")[0]["args"]
        assert note["channel"] == "C0PUBLIC1" and note["user"] == "U0MGR0001"
        assert "lead-1 is SQL" in json.dumps(note["blocks"])
        assert svc.service.store.outbox_status("answer:Ev1") == "done"  # delivered: nothing more will come
        assert not [c for c in fake.of("chat.postMessage") if c["args"]["channel"] == "C0PUBLIC1"]
        _ask(svc, fake, "U0MGR0001", "why was lead-1 an SQL", "D0MGR0001", "Ev2")  # in a DM: an ordinary reply
        reply = fake.wait_for("chat.postMessage", where=lambda c: c["args"]["channel"] == "D0MGR0001")[0]["args"]
        assert "lead-1 is SQL" in json.dumps(reply["blocks"])


# ---- questions from anyone in the workspace ---------------------------------------------------------

def test_a_period_too_far_back_gets_a_polite_answer_not_a_crash(tmp_path, fake):
    """timedelta(days=999999999) overflows: before, the slash command got no acknowledgement."""
    with Service(tmp_path, fake) as svc:
        for text in ("stats last 999999999 days", "stats last 11 years", "stats last 0 weeks",
                     "stats last " + "9" * 5000 + " days"):
            r = svc.command(text, "U0MGR0001")
            assert r.status_code == 200, (text[:40], r.status_code, r.text[:200])
            assert "ten years at most" in json.dumps(r.json()), text[:40]
        assert "last 3650 days" in svc.command("stats last 3650 days", "U0MGR0001").json()["text"]
        assert "last 2 quarters" in svc.command("pipeline last 2 quarters", "U0MGR0001").json()["text"]
        assert "last 3 weeks" in svc.command("stats last 3 weeks by rep", "U0BOB0001").json()["text"]
        stranger = svc.command("stats last 999999999 days", "U0STRANGR").json()  # told no before anything is read
        assert stranger["text"] == "Stats are for the sales team"
        _ask(svc, fake, "U0MGR0001", "stats last 999999999 days", "D0MGR0001", "Ev1")
        reply = fake.wait_for("chat.postMessage", where=lambda c: c["args"]["channel"] == "D0MGR0001")[0]["args"]
        assert "ten years at most" in json.dumps(reply["blocks"])


def test_a_lead_id_is_read_from_the_question_as_written(tmp_path, fake):
    """"İ" lowercases to two characters: an id cut from the original text at positions found in the
    lowercased one came out as "İ" and the lead was "not found"."""
    with Service(tmp_path, fake) as svc:
        events = [{**e, "lead": "İlead-1", "id": f"İ{e['id']}"} for e in sql_events("lead-1")]
        assert svc.send_events(events).status_code == 200
        fake.wait_for("chat.postMessage")
        answer = svc.command("why is İlead-1 an SQL", "U0MGR0001").json()
        assert answer["text"] == "Why İlead-1 is SQL", answer["text"]
        assert svc.command("WHY WAS İlead-1", "U0MGR0001").json()["text"] == "Why İlead-1 is SQL"


def test_a_failing_listener_still_acknowledges_and_tells_the_asker(tmp_path, fake, caplog):
    """Whatever goes wrong inside a listener, Slack gets its acknowledgement (no 500, no 404 after
    three seconds), the asker gets a word, and the log names the failure without the request."""
    caplog.set_level(logging.DEBUG)
    marker = "MARKER-9c1e"
    with Service(tmp_path, fake) as svc:
        no_user = urllib.parse.urlencode({"command": "/leadflow", "text": f"stats {marker}", "channel_id": "C0STATS01",
                                          "team_id": "T0TEAM001", "trigger_id": "1.2.3"}).encode()
        r = svc.slack(no_user, "application/x-www-form-urlencoded")  # no user_id: the listener raises
        assert r.status_code == 200, (r.status_code, r.text[:200])
        assert r.json()["response_type"] == "ephemeral" and "went wrong" in r.json()["text"]

        r = svc.interactive(click_payload("sql_accept", marker, "U0ALICE01", {"ts": "1.0", "channel": "C0STATS01"}))
        assert r.status_code == 200  # acknowledged before the failure
        note = fake.wait_for("chat.postEphemeral")[0]["args"]
        assert note["user"] == "U0ALICE01" and note["channel"] == "C0STATS01" and "went wrong" in note["text"]

        view = reject_modal(1, "lead-1", {"no_budget": {"label": "No budget"}}).to_dict()
        submit = {"type": "view_submission", "user": {"id": "U0ALICE01"}, "team": {"id": "T0TEAM001"},
                  "api_app_id": "A0APP0001", "trigger_id": "t",
                  "view": {**view, "private_metadata": marker, "id": "V0VIEW001", "state": {"values": {
                      "reason": {"reason": {"type": "static_select", "selected_option": {"value": "no_budget"}}}}}}}
        r = svc.interactive(submit)
        assert r.status_code == 200 and r.json()["response_action"] == "errors"  # the modal stays open, says so
        assert "went wrong" in r.json()["errors"]["reason"]
        assert svc.health()["ok"] is True
    logged = caplog.text + "".join(str(r.msg) for r in caplog.records)
    assert marker not in logged
    assert logged.count("failed with ValueError") == 2 and "failed with KeyError" in logged
