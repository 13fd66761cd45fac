"""Incoming events: validation, dead letters, Segment payloads, time parsing.

The first part runs the real `leadflow ingest` on a JSONL file that mixes good and bad lines and checks
the exit code, what stderr says about each bad line (file:line, field, reason) and the `dead_letters`
table (read with sqlite3). The second part unit-tests `engine.intake` and the time parsing of `engine.core`.
"""
from __future__ import annotations

import json
import sqlite3
import textwrap
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from leadflow.core import parse_duration, parse_time
from leadflow.intake import Accepted, Rejection, parse_line, validate
from leadflow.intake._events import MAX_EVENT_BYTES, from_segment
from tests.leadflow_cli import Leadflow, clean_env, leadflow

AT = "2026-11-02T09:00:00Z"
T0 = datetime(2026, 11, 2, 9, 0, 0, tzinfo=timezone.utc).timestamp()

RULES = r"""
    leadflow: 1
    scoring:
      fit:
        - { id: senior, when: { title: { matches: "(?i)\\bvp\\b" } }, points: 20 }
        - { id: mid_size, when: { company.size: { at_least: 100 } }, points: 15 }
      engagement:
        - { id: demo, on: demo_requested, points: 40, repeat: once }
        - { id: pricing, on: page_view, where: { url: { contains: "/pricing" } }, points: 10 }
    """


@pytest.fixture
def cli(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(textwrap.dedent(RULES))
    return Leadflow(tmp_path / "t.db", rules)


def ev(eid: str, **over) -> dict:
    base = {"id": eid, "lead": "bad", "type": "page_view", "at": AT, "data": {"url": "/"}}
    base.update(over)
    return base


def without(key: str, eid: str) -> str:
    obj = ev(eid)
    del obj[key]
    return json.dumps(obj)


# (raw line or None for a blank line, field, reason keyword); None field = a good line
BIG = json.dumps(ev("b-big", data={"blob": "x" * MAX_EVENT_BYTES}))
LINES = [
    (json.dumps({"id": "g1", "lead": "good", "type": "lead_updated", "at": AT, "data": {"title": "VP Sales"}}), None, None),
    ('{"id": "b-trunc", "lead": "bad", "type": "page_view"', "", "not JSON"),
    (None, None, None),
    ('["id", "b-list"]', "", "JSON object"),
    ('"just some text"', "", "JSON object"),
    (without("id", "b-noid"), "id", "missing"),
    (without("lead", "b-nolead"), "lead", "missing"),
    (without("type", "b-notype"), "type", "missing"),
    (without("at", "b-noat"), "at", "missing"),
    (json.dumps(ev("b-numtype", type=42)), "type", "42"),
    (json.dumps(ev("b-listdata", data=[1, 2])), "data", "JSON object"),
    (json.dumps(ev("b-strdata", data="url=/pricing")), "data", "JSON object"),
    (json.dumps(ev("b-naive", at="2026-11-02T09:00:00")), "at", "time zone"),
    (json.dumps(ev("b-notdate", at="yesterday")), "at", "ISO-8601"),
    (json.dumps(ev("b-numat", at=1793610000)), "at", "ISO-8601"),
    (BIG, "", "64 KB"),
    (json.dumps(ev("")), "id", "non-empty"),
    (json.dumps(ev("b-boollead", lead=True)), "lead", "non-empty string"),
    (json.dumps({"id": "g2", "lead": "good", "type": "demo_requested", "at": "2026-11-02T09:05:00Z"}), None, None),
    (json.dumps({"id": "g3", "lead": "good", "type": "page_view", "at": "2026-11-02T10:00:00+01:00",
                 "data": {"url": "https://x.example/Pricing"}}), None, None),
]


def write_lines(path: Path, lines: list) -> Path:
    path.write_text("".join((raw if raw is not None else "") + "\n" for raw, _, _ in lines))
    return path


def dead_letters(db: Path) -> list[dict]:
    with closing(sqlite3.connect(db)) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT source, line, raw, reason, field FROM dead_letters ORDER BY id")]


def test_mixed_file_good_lines_applied_bad_lines_dead_lettered(cli):
    path = write_lines(cli.dir / "mixed.jsonl", LINES)
    proc = cli("ingest", str(path), "--json")
    assert proc.returncode == 1, proc.stderr
    bad = [(n, raw, f, why) for n, (raw, f, why) in enumerate(LINES, 1) if f is not None]
    good = [n for n, (raw, f, _) in enumerate(LINES, 1) if raw is not None and f is None]
    assert len(bad) == 16 and len(good) == 3
    assert json.loads(proc.stdout) == {"applied": 3, "duplicates": 0, "rejected": 16, "stages": {"new": 1}}

    # stderr: one line per rejection, `FILE:LINE: rejected: FIELD: reason`
    said = [s for s in proc.stderr.splitlines() if ": rejected: " in s]
    assert len(said) == 16
    for (n, raw, field, why), text in zip(bad, said):
        prefix = f"{path}:{n}: rejected: " + (f"{field}: " if field else "")
        assert text.startswith(prefix), (n, text)
        assert why in text, (n, text)

    # the dead_letters table keeps the raw text and the reason of every bad line
    rows = dead_letters(cli.db)
    assert [(r["line"], r["field"], r["raw"], r["source"]) for r in rows] == \
        [(n, field, raw, str(path)) for n, raw, field, _ in bad]
    for row, (n, _, _, why), text in zip(rows, bad, said):
        assert why in row["reason"] and text.endswith(row["reason"]), (n, row["reason"], text)

    # the good lines were applied: VP 20; demo 40 + pricing ("/Pricing" contains "/pricing") 10
    shown = json.loads(cli("leads", "show", "good", "--json").stdout)
    assert (shown["fit"], shown["engagement"], shown["score"]) == (20, 50, 70)
    # nothing of the bad lines reached the log or the leads
    with closing(sqlite3.connect(cli.db)) as conn:
        assert conn.execute("SELECT id FROM events ORDER BY seq").fetchall() == [("g1",), ("g2",), ("g3",)]
        assert conn.execute("SELECT id FROM leads").fetchall() == [("good",)]
    assert cli("leads", "show", "bad", "--json").returncode == 1

    listed = json.loads(cli("dead-letters", "--json", "--limit", "100").stdout)
    assert len(listed) == 16


def test_rejections_name_the_right_file_among_several(cli):
    first = write_lines(cli.dir / "first.jsonl", [LINES[0]])
    second = write_lines(cli.dir / "second.jsonl", [(None, None, None), (without("at", "x1"), "at", "missing")])
    proc = cli("ingest", str(first), str(second))
    assert proc.returncode == 1
    # compare the locations printed, never search the text for a path (one path may contain another)
    located = [line.split(": rejected: ")[0] for line in proc.stderr.splitlines() if ": rejected: " in line]
    assert located == [f"{second}:2"]
    assert [(r["source"], r["line"]) for r in dead_letters(cli.db)] == [(str(second), 2)]


def test_a_rejected_id_can_be_sent_again_fixed(cli):
    path = write_lines(cli.dir / "bad.jsonl", [(json.dumps(ev("e1", at="2026-11-02T09:00:00")), "at", "")])
    assert cli("ingest", str(path)).returncode == 1
    fixed = write_lines(cli.dir / "fixed.jsonl", [(json.dumps(ev("e1")), None, None)])
    proc = cli("ingest", str(fixed), "--json")
    assert proc.returncode == 0 and proc.stderr == ""
    assert json.loads(proc.stdout)["applied"] == 1  # the rejected line did not take the id


def test_an_id_seen_earlier_in_the_same_file_is_a_duplicate_or_a_conflict(cli):
    first = {"id": "d1", "lead": "dup", "type": "lead_updated", "at": AT, "data": {"title": "VP Sales"}}
    resent = {**first, "at": "2026-11-02T10:00:00+01:00", "data": {"title": "VP Sales"}}  # the same instant
    changed = {**first, "data": {"title": "Intern"}}
    path = write_lines(cli.dir / "dup.jsonl", [(json.dumps(e), None, None) for e in (first, resent, changed)])
    proc = cli("ingest", str(path), "--json")
    assert proc.returncode == 1  # a conflict is a problem found
    assert json.loads(proc.stdout) == {"applied": 1, "duplicates": 1, "rejected": 0, "conflicts": 1,
                                       "stages": {"new": 1}}
    assert ":3: conflict: id: " in proc.stderr and "different event" in proc.stderr
    assert [(r["line"], r["field"]) for r in dead_letters(cli.db)] == [(3, "id")]
    shown = json.loads(cli("leads", "show", "dup", "--json").stdout)
    assert shown["attributes"] == {"title": "VP Sales"} and shown["fit"] == 20


def test_ingest_from_standard_input(cli):
    text = "\n".join([LINES[0][0], without("lead", "s2")]) + "\n"
    proc = leadflow("ingest", "-", "--json", input=text,
                    env=clean_env(LEADFLOW_DB=str(cli.db), LEADFLOW_RULES=str(cli.dir / "rules")))
    assert proc.returncode == 1
    assert (json.loads(proc.stdout)["applied"], json.loads(proc.stdout)["rejected"]) == (1, 1)
    assert "-:2: rejected: lead: " in proc.stderr
    assert [(r["source"], r["line"], r["field"]) for r in dead_letters(cli.db)] == [("-", 2, "lead")]


def test_nan_and_infinity_are_not_json(cli):
    raw = '{"id": "n1", "lead": "nan", "type": "lead_updated", "at": "2026-11-02T09:00:00Z", "data": {"budget": NaN}}'
    path = write_lines(cli.dir / "nan.jsonl", [(raw, "", "")])
    proc = cli("ingest", str(path), "--json")
    try:
        assert proc.returncode == 1 and json.loads(proc.stdout)["rejected"] == 1
        assert [r["raw"] for r in dead_letters(cli.db)] == [raw]
    finally:  # whatever happens, what `leads show --json` prints must be strict JSON
        shown = cli("leads", "show", "nan", "--json")
        if shown.returncode == 0:
            json.loads(shown.stdout, parse_constant=lambda name: (_ for _ in ()).throw(ValueError(name)))


# ---- Segment ---------------------------------------------------------------------------------------

def test_segment_identify_and_track_through_ingest(cli):
    traits = {"title": "VP Sales", "company": {"size": 120}, "email": "ann@acme.example"}
    lines = [
        json.dumps({"type": "identify", "messageId": "seg-1", "userId": "seg-lead",
                    "timestamp": "2026-11-02T09:00:00.000Z", "traits": traits}),
        json.dumps({"type": "track", "messageId": "seg-2", "userId": "seg-lead", "event": "Demo Requested",
                    "timestamp": "2026-11-02T09:05:00.000Z", "properties": {"form": "contact-sales"}}),
        json.dumps({"type": "track", "messageId": "seg-3", "userId": "seg-lead", "event": "Page View",
                    "timestamp": "2026-11-02T09:06:00.000Z", "properties": {"url": "https://x.example/pricing"}}),
        # a native event for the same lead in the same file
        json.dumps({"id": "n-1", "lead": "seg-lead", "type": "lead_updated", "at": "2026-11-02T09:07:00Z",
                    "data": {"email": None}}),
    ]
    path = cli.dir / "segment.jsonl"
    path.write_text("\n".join(lines) + "\n")
    proc = cli("ingest", str(path), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"applied": 4, "duplicates": 0, "rejected": 0, "stages": {"new": 1}}

    shown = json.loads(cli("leads", "show", "seg-lead", "--json").stdout)
    # traits -> attributes (email later removed by null); VP 20 + company.size 120 -> 15 = 35;
    # "Demo Requested" -> demo_requested 40; "Page View" -> page_view with url /pricing 10
    assert shown["attributes"] == {"title": "VP Sales", "company": {"size": 120}}
    assert (shown["fit"], shown["engagement"], shown["score"]) == (35, 50, 85)
    assert {c["rule"]: c["points"] for c in shown["contributions"]} == {"senior": 20, "mid_size": 15, "demo": 40,
                                                                         "pricing": 10}
    with closing(sqlite3.connect(cli.db)) as conn:
        rows = conn.execute("SELECT id, lead, type, data FROM events ORDER BY seq").fetchall()
    assert [(i, lead, t, json.loads(d)) for i, lead, t, d in rows] == [
        ("seg-1", "seg-lead", "lead_updated", traits),
        ("seg-2", "seg-lead", "demo_requested", {"form": "contact-sales"}),
        ("seg-3", "seg-lead", "page_view", {"url": "https://x.example/pricing"}),
        ("n-1", "seg-lead", "lead_updated", {"email": None}),
    ]
    # messageId is the idempotency key
    again = json.loads(cli("ingest", str(path), "--json").stdout)
    assert (again["applied"], again["duplicates"]) == (0, 4)


def test_segment_mapping():
    identify = {"type": "identify", "messageId": "m1", "userId": "u1", "timestamp": AT,
                "traits": {"title": "CTO"}, "context": {"ip": "1.2.3.4"}}
    assert from_segment(identify) == {"id": "m1", "lead": "u1", "type": "lead_updated", "at": AT,
                                      "data": {"title": "CTO"}}
    track = {"type": "track", "messageId": "m2", "userId": "u1", "event": "Demo Requested", "timestamp": AT,
             "properties": {"plan": "pro"}}
    assert from_segment(track) == {"id": "m2", "lead": "u1", "type": "demo_requested", "at": AT,
                                   "data": {"plan": "pro"}}
    checked = validate(dict(track))
    assert isinstance(checked, Accepted) and checked.event["type"] == "demo_requested" and checked.at == T0
    # without properties/traits the data is empty
    assert validate({**identify, "traits": None}).event["data"] == {}
    # a native event whose type happens to be "track" is not Segment (no messageId)
    native = {"id": "e1", "lead": "L", "type": "track", "at": AT}
    assert validate(dict(native)).event == {**native, "data": {}}


def test_segment_payload_with_problems_is_rejected_with_the_field():
    no_user = {"type": "track", "messageId": "m3", "event": "Demo Requested", "timestamp": AT}
    rejected = validate(no_user)
    assert isinstance(rejected, Rejection) and rejected.field == "lead"
    no_time = {"type": "identify", "messageId": "m4", "userId": "u", "traits": {}}
    rejected = validate(no_time)
    assert isinstance(rejected, Rejection) and rejected.field == "at"


# ---- engine.intake.validate / parse_line -------------------------------------------------------------

def good(**over) -> dict:
    base = {"id": "e1", "lead": "L", "type": "page_view", "at": AT, "data": {"url": "/"}}
    base.update(over)
    return base


def test_validate_accepts_a_clean_event():
    checked = validate(good())
    assert isinstance(checked, Accepted)
    assert checked.event == good() and checked.at == T0


def test_validate_defaults_and_normalises():
    no_data = good()
    del no_data["data"]
    assert validate(no_data).event["data"] == {}
    assert validate(good(data=None)).event["data"] == {}
    extra = validate(good(source="crm", note="x"))
    assert set(extra.event) == {"id", "lead", "type", "at", "data"}
    for etype in ("a", "page_view", "crm.stage_changed", "hubspot:form-submit", "X9"):
        assert isinstance(validate(good(type=etype)), Accepted), etype


@pytest.mark.parametrize("obj, field, words", [
    ([1, 2], "", "JSON object"),
    ("text", "", "JSON object"),
    (None, "", "JSON object"),
    (12, "", "JSON object"),
    ({"lead": "L", "type": "t", "at": AT}, "id", "missing"),
    ({"id": "e", "type": "t", "at": AT}, "lead", "missing"),
    ({"id": "e", "lead": "L", "at": AT}, "type", "missing"),
    ({"id": "e", "lead": "L", "type": "t"}, "at", "missing"),
    (good(id=""), "id", "non-empty"),
    (good(id="   "), "id", "non-empty"),
    (good(id=True), "id", "non-empty string"),
    (good(id=1.5), "id", "non-empty string"),
    (good(id=["e1"]), "id", "non-empty string"),
    (good(id="x" * 201), "id", "longer than"),
    (good(lead=""), "lead", "non-empty"),
    (good(lead={"id": 1}), "lead", "non-empty string"),
    (good(type=42), "type", "42"),
    (good(type=""), "type", "must be a name"),
    (good(type="page view"), "type", "must be a name"),
    (good(type="1st_visit"), "type", "must be a name"),
    (good(type=None), "type", "must be a name"),
    (good(at="2026-11-02T09:00:00"), "at", "time zone"),
    (good(at="2026-11-02"), "at", ""),
    (good(at="not a date"), "at", "ISO-8601"),
    (good(at="2026-13-02T09:00:00Z"), "at", "ISO-8601"),
    (good(at=1793610000), "at", "ISO-8601"),
    (good(at=None), "at", "ISO-8601"),
    (good(data=[1]), "data", "JSON object"),
    (good(data="x"), "data", "JSON object"),
    (good(data=3), "data", "JSON object"),
])
def test_validate_rejects(obj, field, words):
    rejected = validate(obj)
    assert isinstance(rejected, Rejection), rejected
    assert rejected.field == field
    assert words in rejected.reason
    assert str(rejected) == (f"{field}: {rejected.reason}" if field else rejected.reason)


def test_validate_suggests_a_misspelled_field():
    rejected = validate({"id": "e", "lead": "L", "tpye": "page_view", "at": AT})
    assert rejected.field == "type" and "missing" in rejected.reason and "tpye" in rejected.reason


def test_the_typo_hint_reads_well():
    rejected = validate({"id": "e", "lead": "L", "tpye": "page_view", "at": AT})
    assert "'tpye' a typo" in rejected.reason


def test_parse_line_size_limit_and_json():
    assert parse_line('{"a": 1}') == {"a": 1}
    assert parse_line("[1]") == [1]
    bad = parse_line('{"a": ')
    assert isinstance(bad, Rejection) and bad.field == "" and bad.reason.startswith("not JSON")
    # exactly 64 KB is allowed, one byte more is not (bytes, not characters)
    pad = MAX_EVENT_BYTES - len('{"a": ""}')
    assert MAX_EVENT_BYTES == 65536
    assert parse_line('{"a": "' + "x" * pad + '"}') == {"a": "x" * pad}
    over = parse_line('{"a": "' + "x" * (pad + 1) + '"}')
    assert isinstance(over, Rejection) and "64 KB" in over.reason
    # the limit is in bytes: 32768 x "é" is 32768 characters but 65536 bytes, plus the wrapper
    wide = parse_line('{"a": "' + "é" * (MAX_EVENT_BYTES // 2) + '"}')
    assert isinstance(wide, Rejection) and "64 KB" in wide.reason


# ---- engine.core times -------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("2026-11-02T09:00:00Z", T0),
    ("2026-11-02T09:00:00z", T0),
    ("2026-11-02T09:00:00+00:00", T0),
    ("2026-11-02T10:00:00+01:00", T0),                   # 10:00 at +01:00 is 09:00 UTC
    ("2026-11-02T03:30:00-05:30", T0),                   # 03:30 at -05:30 is 09:00 UTC
    ("2026-11-02T09:00:00.250Z", T0 + 0.25),
    ("  2026-11-02T09:00:00Z  ", T0),
    ("2026-11-03T09:00:00Z", T0 + 86400),
    ("2026-03-29T01:00:00Z", datetime(2026, 3, 29, 1, tzinfo=timezone.utc).timestamp()),
    ("1970-01-01T00:00:00Z", 0.0),
    ("1970-01-01T01:00:00+01:00", 0.0),
])
def test_parse_time(text, expected):
    assert parse_time(text) == expected


@pytest.mark.parametrize("text, words", [
    ("2026-11-02T09:00:00", "time zone"),
    ("2026-11-02", ""),
    ("", ""),
    ("Z", ""),
    ("yesterday", "ISO-8601"),
    ("2026-02-30T09:00:00Z", ""),
    ("2026-11-02T25:00:00Z", ""),
    (1793610000, "ISO-8601"),
    (1793610000.0, "ISO-8601"),
    (None, "ISO-8601"),
    (["2026-11-02T09:00:00Z"], "ISO-8601"),
])
def test_parse_time_rejects(text, words):
    with pytest.raises(ValueError) as info:
        parse_time(text)
    assert words in str(info.value)


def test_parse_time_is_not_the_wall_clock_zone():
    # a naive time must not silently be read in the machine's zone
    with pytest.raises(ValueError):
        parse_time(datetime(2026, 11, 2, 9).isoformat())
    assert parse_time((datetime(2026, 11, 2, 9, tzinfo=timezone(timedelta(hours=2)))).isoformat()) == T0 - 7200


@pytest.mark.parametrize("text, seconds", [
    ("15m", 900),
    ("4h", 14400),
    ("30d", 2592000),
    ("2w", 1209600),
    ("1d", 86400),
    ("90s", 90),
    ("1.5h", 5400),
    ("0.5d", 43200),
    (" 2d ", 172800),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["0d", "0.0h", "-1d", "10", "d", "1y", "", "1d2h", "1 day", "abc", 5, 5.0, None,
                                  ["1d"], True])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert "15m, 4h, 30d, 2w" in str(info.value)


# ---- hostile values, ids, the intake's clock, webhook bodies ------------------------------------------

@pytest.mark.parametrize("obj, field, words", [
    (good(data={"amount": float("inf")}), "data.amount", "finite"),
    (good(data={"a": [{"b": -float("inf")}]}), "data.a[0].b", "finite"),
    (good(data={"a": float("nan")}), "data.a", "finite"),
    (good(data={"n": 10 ** 400}), "data.n", "too large"),
    (good(data={"x": "ok\ud800"}), "data.x", "surrogate"),
    (good(extra={"deep": [[[[1]]]]}, data={"x": json.loads("[" * 40 + "]" * 40)}), "data.x" + "[0]" * 30, "nested"),
    (good(id=7), "id", 'send "7"'),
    (good(id="e\u200b1"), "id", "U+200B"),
    (good(lead="L\r"), "lead", "control"),
    (good(lead="\tL"), "lead", "control"),
    (good(lead="L "), "lead", "spaces at the start or end"),
    (good(id="fb-12"), "id", "leadflow's own"),
    (good(type="decay_tick"), "type", "leadflow's own event type"),
    (good(type="page_view\n"), "type", "must be a name"),
    (good(at="1969-12-31T23:59:59Z"), "at", "before 1970"),
    (good(type="deal_won", data={"amount": "1,200"}), "data.amount", "thousands separators"),
    (good(type="campaign_cost", data={"amount": 5}), "data.campaign", "campaign's name"),
])
def test_validate_rejects_hostile_values_with_their_path(obj, field, words):
    rejected = validate(obj)
    assert isinstance(rejected, Rejection), rejected
    assert (rejected.field, words in rejected.reason) == (field, True), rejected


def test_ids_are_nfc_and_own_types_pass_for_trusted_and_internal_senders():
    from leadflow.intake import INTERNAL, Intake

    assert validate(good(lead="Jose\u0301")).event["lead"] == "Jos\u00e9"
    assert isinstance(validate(good(type="sql_accepted"), Intake(trusted_types=True)), Accepted)
    assert validate(good(id="fb-1", type="sql_accepted"), Intake(trusted_types=True)).field == "id"
    assert isinstance(validate(good(id="fb-1", type="sql_accepted"), INTERNAL), Accepted)


def test_the_future_limit_uses_the_intake_clock():
    from leadflow.intake import Intake

    at_noon = Intake(clock=lambda: T0, max_future=3600)  # T0 is AT
    assert isinstance(validate(good(at="2026-11-02T10:00:00Z"), at_noon), Accepted)  # one hour ahead: allowed
    late = validate(good(at="2026-11-02T10:00:01Z"), at_noon)
    assert late.field == "at" and "more than 1h in the future" in late.reason
    assert isinstance(validate(good(at="2099-01-01T00:00:00Z")), Accepted)  # no clock, no limit (simulations)


@pytest.mark.parametrize("body, items", [
    ('{"a": 1}', (False, ['{"a": 1}'])),
    ("[]", (True, [])),
    (' [ {"a": "x,]}"} , 2 ,"\\"]"]\n', (True, ['{"a": "x,]}"}', "2", '"\\"]"'])),
    ('[[1, [2]], {"b": [3]}]', (True, ["[1, [2]]", '{"b": [3]}'])),
    ('[{"a": tru}, 1]', (True, ['{"a": tru}', "1"])),  # a bad item is the item's problem
])
def test_split_body_keeps_each_items_text(body, items):
    from leadflow.intake import split_body

    assert split_body(body) == items


@pytest.mark.parametrize("body", ["[1,]", "[,1]", "[1]]", "[1] x", "[{]}", "[1", '["a]'])
def test_split_body_refuses_a_broken_array(body):
    from leadflow.intake import split_body

    with pytest.raises(ValueError):
        split_body(body)
