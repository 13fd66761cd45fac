"""The rep's card over loopback: the reasons as the rule authors described them, and an "Open in CRM"
button whose link is the rules' template filled with the lead's (URL-encoded) attribute, on the card
and in the App Home. Expected links are built here with urllib, not with leadflow's code."""
from __future__ import annotations

import json
from urllib.parse import quote, urlsplit

import pytest

from tests.bot_harness import RULES, Service, click_payload, sql_events
from tests.slack_fake import SlackFake

DESCRIBED = RULES.replace("    - id: senior\n", "    - id: senior\n      description: \"VP or director *title*\"\n") \
                 .replace("    - id: demo\n", "    - id: demo\n      description: asked for a demo\n") \
    + 'crm: { record_url: "https://crm.example/contacts/{hubspot_id}" }\n'
HOSTILE_ID = "42/../../evil.example?x=1#@evil.example"


@pytest.fixture
def fake():
    with SlackFake() as f:
        yield f


def events(lead: str, **attrs) -> list[dict]:
    found = sql_events(lead)
    found[0]["data"].update(attrs)
    return found


def cards(fake: SlackFake, n: int = 1) -> list[dict]:
    return [c["args"] for c in fake.wait_for("chat.postMessage", n, where=lambda c: c["args"].get("blocks"))]


def buttons(blocks: list[dict]) -> list[dict]:
    found = [b["accessory"] for b in blocks if b.get("accessory", {}).get("type") == "button"]
    found += [e for b in blocks if b["type"] == "actions" for e in b["elements"]]
    return found


def test_the_card_lists_reasons_as_described_and_links_the_crm_record(tmp_path, fake):
    assert DESCRIBED.count("description:") == 2  # the replacements above found their rules
    with Service(tmp_path, fake, rules=DESCRIBED) as svc:
        assert svc.send_events(events("lead-1", hubspot_id=HOSTILE_ID)).status_code == 200
        card = cards(fake)[0]
        text = json.dumps(card["blocks"])
        assert "asked for a demo +40" in text
        assert "VP or director *title* +30" in text
        assert "`senior`" not in text and "`demo`" not in text  # rule ids are for `leads explain`
        crm = [b for b in buttons(card["blocks"]) if b.get("url")]
        assert len(crm) == 1 and crm[0]["text"]["text"] == "Open in CRM"
        assert crm[0]["url"] == "https://crm.example/contacts/" + quote(HOSTILE_ID, safe="")
        parts = urlsplit(crm[0]["url"])
        assert (parts.scheme, parts.netloc, parts.query, parts.fragment) == ("https", "crm.example", "", "")
        assert [b["action_id"] for b in card["blocks"][-1]["elements"]] == ["sql_accept", "sql_reject"]

        # Slack posts a click on a link button to the app too: acknowledged, and nothing is said
        click = click_payload("open_crm", "", "U0ALICE01", {"ts": "1.1", "channel": "D0ALICE01"})
        click["actions"][0].pop("value")
        assert svc.interactive(click).status_code == 200
        svc.event({"type": "app_home_opened", "user": "U0ALICE01", "channel": "D0ALICE01", "tab": "home"}, "Ev01")
        home = fake.wait_for("views.publish")[0]["args"]["view"]
        links = [b["url"] for b in buttons(home["blocks"]) if b.get("url")]
        assert links == [crm[0]["url"]]
        svc.drain()
        assert not fake.of("chat.postEphemeral") and not fake.unexpected


def test_a_reason_without_description_shows_its_id_and_markup_stays_text(tmp_path, fake):
    rules = RULES.replace("    - id: senior\n", "    - id: senior\n      description: \"*VP* <!channel>\"\n")
    with Service(tmp_path, fake, rules=rules) as svc:
        svc.send_events(events("lead-1", hubspot_id="1"))
        text = json.dumps(cards(fake)[0]["blocks"])
        assert "demo +40" in text  # no description: the id, as before
        assert "<!channel>" not in text and "&lt;!channel&gt;" in text
        assert "Open in CRM" not in text  # these rules have no crm template


def test_no_button_for_a_lead_without_a_usable_id_and_the_card_still_goes_out(tmp_path, fake):
    with Service(tmp_path, fake, rules=DESCRIBED) as svc:
        svc.send_events(events("lead-1"))  # no hubspot_id
        svc.send_events(events("lead-2", hubspot_id="9" * 3000))  # the link would exceed Slack's 3000
        svc.send_events(events("lead-3", hubspot_id=7))
        posted = cards(fake, 3)
        svc.drain()
        by_lead = {c["text"].split()[2]: [b for b in buttons(c["blocks"]) if b.get("url")] for c in posted}
        assert by_lead["lead-1"] == [] and by_lead["lead-2"] == []
        assert [b["url"] for b in by_lead["lead-3"]] == ["https://crm.example/contacts/7"]
        assert len(fake.of("chat.postMessage")) == 3 and not fake.unexpected
