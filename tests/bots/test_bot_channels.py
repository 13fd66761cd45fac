"""Messages to channels named in the rules (`#sales-queue`), after a crash, a 5xx, a 429 or a
connection dropped before Slack's answer, and after the channel was renamed or archived.

Slack's history, replies and update methods take conversation ids, not names; the fake answers
like Slack, so a notifier that looks a card up by name never finds it. These tests prove each
channel message is delivered exactly once and that a failed lookup is retried, never taken for
"not posted yet".
"""
from __future__ import annotations

import json

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from leadflow.core import parse_time
from leadflow.delivery import NETWORK_TIMEOUT, list_outbox
from leadflow.delivery._dispatcher import LEASE
from tests.bot_harness import NAMED, TOKEN, Clock, Service, click_payload, sql_events
from tests.slack_fake import SlackFake

QUEUE = "C0QUEUE01"


@pytest.fixture
def fake():
    with SlackFake() as f:
        yield f


def meta(key: str) -> dict:
    return {"event_type": "leadflow", "event_payload": {"key": key}}


def test_the_fake_answers_like_slack(fake):
    client = WebClient(token=TOKEN, base_url=fake.url)
    first = client.chat_postMessage(channel="#sales-queue", text="one", metadata=meta("k1"))
    assert first["channel"] == QUEUE  # a name is accepted for posting; the answer names the id
    reply = client.chat_postMessage(channel=QUEUE, text="in the thread", thread_ts=first["ts"])
    second = client.chat_postMessage(channel="sales-queue", text="two")
    for call in (lambda: client.conversations_history(channel="#sales-queue"),
                 lambda: client.conversations_replies(channel="#sales-queue", ts=first["ts"]),
                 lambda: client.chat_update(channel="#sales-queue", ts=first["ts"], text="x"),
                 lambda: client.chat_postMessage(channel="#no-such-channel", text="x")):
        with pytest.raises(SlackApiError) as err:
            call()
        assert err.value.response["error"] == "channel_not_found"
    history = client.conversations_history(channel=QUEUE)["messages"]
    assert [m["ts"] for m in history] == [second["ts"], first["ts"]]  # newest first, no thread replies
    assert all("metadata" not in m for m in history)  # metadata only when asked for
    asked = client.conversations_history(channel=QUEUE, include_all_metadata=True)["messages"]
    assert asked[1]["metadata"]["event_payload"] == {"key": "k1"}
    assert [m["ts"] for m in client.conversations_history(channel=QUEUE, oldest=first["ts"])["messages"]] == \
        [second["ts"]]
    thread = client.conversations_replies(channel=QUEUE, ts=first["ts"])["messages"]
    assert [m["ts"] for m in thread] == [first["ts"], reply["ts"]]
    pages, names, cursor = 0, [], None
    while True:
        resp = client.conversations_list(types="public_channel", limit=200, cursor=cursor)
        pages += 1
        names += [c["name"] for c in resp["channels"]]
        cursor = resp["response_metadata"]["next_cursor"]
        if not cursor:
            break
    assert pages > 1 and "sales-queue" in names and "board" not in names  # fewer than asked per page; no private
    private = client.conversations_list(types="private_channel")["channels"]
    assert [c["name"] for c in private] == ["board"]
    assert client.conversations_open(users="U0ALICE01")["channel"]["id"] == "D0ALICE01"


@pytest.mark.parametrize("reached_slack", [True, False], ids=["slack-had-it", "never-arrived"])
def test_a_channel_card_whose_send_died_is_delivered_exactly_once(tmp_path, fake, reached_slack):
    with Service(tmp_path, fake, rules=NAMED, run_worker=False) as svc:
        svc.send_events(sql_events("lead-de", country="DE"))  # the DE pool is cara, who is away: the queue
        service = svc.service
        service.desk.route_pending()
        row = service.store.outbox("card")[0]
        with service.store.transaction():  # what a kill during the send leaves behind
            service.store.outbox_sending(row["id"])
        if reached_slack:  # Slack took it before the kill: it is in the channel, carrying our key
            WebClient(token=TOKEN, base_url=fake.url).chat_postMessage(channel=QUEUE, text="card",
                                                                       metadata=meta(row["key"]))
        assert service.dispatcher.run_once() == 1
        assert service.dispatcher.run_once() == 0  # nothing left to do
        in_channel = fake.history_of("#sales-queue")
        assert [m["metadata"]["event_payload"]["key"] for m in in_channel] == [row["key"]]
        result = service.store.outbox_result(row["key"])
        assert result["channel"] == QUEUE and result["ts"] == in_channel[0]["ts"]
        assert result.get("recovered", False) is reached_slack
        assert {c["args"]["channel"] for c in fake.of("conversations.history")} == {QUEUE}  # looked up by id


@pytest.mark.parametrize("trouble", ["answer-lost-then-lookup-429", "post-500-then-post-429"])
def test_a_channel_card_through_a_5xx_and_a_429_is_posted_once(tmp_path, fake, trouble):
    if trouble == "answer-lost-then-lookup-429":
        fake.lose_answer.add("chat.postMessage")  # Slack posts it; the answer is an HTTP 500
        fake.fail_next["conversations.history"] = (429, 1)  # and the look for it is rate limited once
    else:
        fake.fail_next["chat.postMessage"] = [(500, None), (429, 1)]  # refused twice, never carried out
    with Service(tmp_path, fake, rules=NAMED) as svc:
        svc.send_events(sql_events("lead-de", country="DE"))
        key = "card:1"
        svc.drain()
        in_channel = fake.history_of("#sales-queue")
        assert [m["metadata"]["event_payload"]["key"] for m in in_channel] == [key]
        assert svc.service.store.outbox_status(key) == "done"
        limited = [c for c in fake.calls if c.get("failed") == 429]
        later = [c for c in fake.calls if c["method"] == limited[0]["method"] and c["at"] > limited[0]["at"]]
        assert later and later[0]["at"] - limited[0]["at"] >= 0.9  # Retry-After was honoured
        card = {"channel": QUEUE, "ts": in_channel[0]["ts"]}
        svc.interactive(click_payload("sql_accept", "1", "U0MGR0001", card))  # a manager takes it
        update = fake.wait_for("chat.update")[0]["args"]
        assert (update["channel"], update["ts"]) == (QUEUE, card["ts"])  # updated in place, by id
        svc.drain()
        assert len(fake.history_of("#sales-queue")) == 1


def test_failed_channel_lookups_are_retried_never_taken_for_not_posted(tmp_path, fake):
    clock = Clock(parse_time("2026-11-02T09:00:00Z"))
    with Service(tmp_path, fake, clock=clock, rules=NAMED, run_worker=False) as svc:
        svc.send_events(sql_events("lead-de", country="DE"))
        fake.fail_next["conversations.list"] = [(500, None), (429, 1)]
        fake.errors["conversations.list"] = ["missing_scope"]  # a setting to fix: retried meanwhile
        errors = []
        for _ in range(3):
            svc.service.work_once()
            errors.append(svc.service.store.outbox()[-1]["last_error"].split(":")[0])
            assert fake.of("chat.postMessage") == []  # no lookup answer, no post (and no second card later)
            clock.now += 60
        assert errors == ["http_busy", "rate_limited", "slack"]
        svc.service.work_once()
        assert len(fake.history_of("#sales-queue")) == 1
        assert svc.service.store.outbox_status("card:1") == "done"


def test_escalations_digests_and_answers_to_named_channels(tmp_path, fake):
    clock = Clock(parse_time("2026-11-09T08:00:00Z"))
    rules = NAMED + 'digest: { channel: "#marketing", every: 7d }\n'
    with Service(tmp_path, fake, clock=clock, rules=rules, run_worker=False) as svc:
        store = svc.service.store
        with store.transaction():  # an answer to a channel nobody can find: fails alone, for good
            store.add_outbox("answer:lost", "answer", "", {"channel": "#no-such-channel", "text": "hello"})
        svc.send_events(sql_events("lead-1"))  # alice, then bob, then the managers
        svc.service.work_once()
        for _ in range(2):
            clock.now += 5 * 3600
            svc.service.work_once()
        svc.service.work_once()
        escalation = fake.history_of("#sales-managers")
        assert len(escalation) == 1 and "lead-1" in escalation[0]["text"]
        digest = fake.history_of("#marketing")
        assert len(digest) == 1 and "Weekly pipeline digest" in digest[0]["text"]
        assert fake.of("files.completeUploadExternal")[0]["args"]["channel_id"] == "C0MARKET1"
        failed = [e.to_json() for e in list_outbox(store, failed_only=True)]
        assert [(e["key"], e["attempts"]) for e in failed] == [("answer:lost", 1)]
        assert failed[0]["last_error"].startswith("slack:channel_not_found: no channel named #no-such-channel")
        cards = [json.loads(r["payload"])["result"]["channel"] for r in store.outbox("card")]
        assert cards == ["D0ALICE01", "D0BOB0001", QUEUE]  # both reps let it lapse: the queue, by its id


def test_a_reminder_in_a_thread_is_found_after_a_crash_not_posted_again(tmp_path, fake):
    clock = Clock(parse_time("2026-11-02T09:00:00Z"))
    with Service(tmp_path, fake, clock=clock, rules=NAMED, run_worker=False) as svc:
        service = svc.service
        svc.send_events(sql_events("lead-1"))
        service.work_once()  # alice's card
        clock.now += 2.5 * 3600  # past remind_at
        service.desk.tick()
        row = next(r for r in service.store.outbox("remind"))
        with service.store.transaction():  # killed while sending the reminder...
            service.store.outbox_sending(row["id"])
        card = service.store.outbox_result("card:1")  # ...after Slack had put it in the card's thread
        WebClient(token=TOKEN, base_url=fake.url).chat_postMessage(channel=card["channel"], thread_ts=card["ts"],
                                                                   text="Reminder", metadata=meta(row["key"]))
        assert service.dispatcher.run_once() == 1
        replies = [m for m in fake.history_of(card["channel"]) if m.get("thread_ts") == card["ts"]]
        assert len(replies) == 1  # history never lists thread replies: the notifier asked the thread
        assert service.store.outbox_result(row["key"]).get("recovered") is True
        assert fake.of("conversations.replies")


def _cards(fake: SlackFake) -> list[str]:
    """The outbox key of every chat.postMessage Slack carried out (answered or not)."""
    return [c["args"]["metadata"]["event_payload"]["key"] for c in fake.calls
            if c["method"] == "chat.postMessage" and not c.get("failed")]


def test_a_post_whose_connection_dropped_is_found_not_posted_again(tmp_path, fake):
    """Slack took the card and the connection closed before its answer: the client must not post it
    again on its own; the outbox retries, finds the card by its key and records it."""
    clock = Clock(parse_time("2026-11-02T09:00:00Z"))
    fake.drop_answer.add("chat.postMessage")
    with Service(tmp_path, fake, clock=clock, rules=NAMED, run_worker=False) as svc:
        store = svc.service.store
        svc.send_events(sql_events("lead-de", country="DE"))
        svc.service.work_once()
        row = store.outbox("card")[0]
        assert row["status"] == "pending" and row["last_error"].startswith("network")
        clock.now += 60
        svc.service.work_once()
        assert store.outbox_status("card:1") == "done"
        assert store.outbox_result("card:1").get("recovered") is True
    assert _cards(fake) == ["card:1"]
    assert len(fake.history_of("#sales-queue")) == 1


def test_a_channel_archived_and_made_anew_under_its_name_gets_the_next_card(tmp_path, fake):
    clock = Clock(parse_time("2026-11-02T09:00:00Z"))
    with Service(tmp_path, fake, clock=clock, rules=NAMED, run_worker=False) as svc:
        svc.send_events(sql_events("lead-a", country="DE"))
        svc.service.work_once()  # #sales-queue resolved to its id (cached) and card:1 posted there
        old = fake.channels[QUEUE]
        old.update(is_archived=True, name="sales-queue-2025")  # archived, renamed; a new #sales-queue
        new = fake.add_channel("sales-queue")
        svc.send_events(sql_events("lead-b", country="DE"))
        svc.service.work_once()
        assert svc.service.store.outbox_status("card:2") == "done"
    assert [m["metadata"]["event_payload"]["key"] for m in fake.messages[QUEUE]] == ["card:1"]
    assert [m["metadata"]["event_payload"]["key"] for m in fake.messages[new]] == ["card:2"]


def test_channel_names_are_looked_up_again_after_an_hour(tmp_path, fake):
    clock = Clock(parse_time("2026-11-02T09:00:00Z"))
    with Service(tmp_path, fake, clock=clock, rules=NAMED, run_worker=False) as svc:
        notifier = svc.service.dispatcher.notifiers[0]
        ticks = Clock(0.0)
        notifier.clock = ticks  # the cache's own clock (monotonic in production)
        posted = []
        for n, lead in enumerate(("lead-a", "lead-b", "lead-c"), 1):
            if n == 2:  # renamed (not archived): its id still works, so only the expiry finds the new one
                fake.channels[QUEUE]["name"] = "old-queue"
                new = fake.add_channel("sales-queue")
            if n == 3:
                ticks.now += 3600
            svc.send_events(sql_events(lead, country="DE"))
            svc.service.work_once()
            posted.append(json.loads(svc.service.store.outbox("card")[-1]["payload"])["result"]["channel"])
    assert posted == [QUEUE, QUEUE, new]  # the cached id for an hour, then the channel with the name now


def test_the_lease_outlasts_every_network_call_of_a_delivery(tmp_path, fake):
    """A holder is only overtaken after its lease: each call of a delivery (Slack, SMTP, webhooks) must
    give up long before, and the notifier's Slack client never re-sends a request on its own."""
    assert LEASE >= 10 * NETWORK_TIMEOUT
    with Service(tmp_path, fake, run_worker=False) as svc:
        client = svc.service.dispatcher.notifiers[0].client
        assert client.timeout <= NETWORK_TIMEOUT and client.retry_handlers == []
