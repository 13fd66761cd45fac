"""Property tests: arbitrary JSON values, event-shaped junk and arbitrary bytes thrown at the webhook
(real uvicorn on loopback) and at ingest (the library function `leadflow ingest` wraps), each on
both backends (db_url: a SQLite file, then PostgreSQL). Whatever comes in: every input gets an
answer (never a 500, never an exception), a known-good event sent alongside is always applied, and
the service stays healthy.

The budget is fixed (derandomized, a set number of examples, no deadline) so CI time is predictable.
"""
from __future__ import annotations

import itertools
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadflow.intake import read_jsonl
from leadflow.pipeline import Pipeline, ingest_file
from tests.bot_harness import RULES, WEBHOOK_TOKEN, Service

AT = "2026-11-02T09:00:00Z"
BUDGET = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# JSON text, built as text so it can hold what Python's json would never write: overflowing
# numbers, escaped lone surrogates, NUL (escaped, and a raw one PostgreSQL text cannot hold),
# invisible characters, deep nesting.
ODD = ["1e400", "-1e400", "1e-400", "1" + "0" * 30, "9" * 400, '"\\ud800"', '"x\\udfff"', '"\\u0000"', '"x\x00"',
       '"\\u200b"', '" lead "', '"fb-1"', '"tick:x:1"', '"1,200"', "-0", "0.1e1", '""', '"\\n"']
leaf = st.one_of(st.none().map(lambda _: "null"), st.booleans().map(json.dumps), st.integers().map(str),
                 st.floats(allow_nan=False, allow_infinity=False).map(json.dumps), st.text(max_size=20).map(json.dumps),
                 st.sampled_from(ODD))
key = st.one_of(st.text(max_size=8), st.sampled_from(["id", "lead", "type", "at", "data", "amount", "\ud800", "a.b"]))
json_text = st.recursive(leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=4).map(lambda xs: "[" + ",".join(xs) + "]"),
    st.dictionaries(key, inner, max_size=4).map(
        lambda d: "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in d.items()) + "}")), max_leaves=12)
deep = st.sampled_from([2, 31, 32, 33, 200, 990, 995, 1000, 1200, 5000]).map(lambda n: "[" * n + "]" * n)
TYPES = ["page_view", "demo_requested", "lead_updated", "deal_won", "deal_lost", "campaign_cost", "sql_accepted",
         "lead_reopened", "decay_tick", "Page View", "page_view\n", "", "x" * 120]
TIMES = [AT, "2026-11-02T09:00:00", "2099-01-01T00:00:00Z", "0001-01-01T00:30:00+01:00", "1969-12-31T23:59:59Z",
         "not a time", "2026-11-02T09:00:00Z\ud800"]
attributes = st.dictionaries(st.sampled_from(["title", "budget", "amount", "campaign", "email", "country"]), json_text,
                             max_size=3).map(lambda d: "{" + ",".join(f'"{k}":{v}' for k, v in d.items()) + "}")
JUNK = {"id": st.one_of(leaf, st.text(max_size=12).map(json.dumps)),
        "lead": st.one_of(leaf, st.text(max_size=12).map(json.dumps)),
        "type": st.one_of(st.sampled_from(TYPES).map(json.dumps), leaf),
        "at": st.one_of(st.sampled_from(TIMES).map(json.dumps), leaf),
        "data": st.one_of(json_text, attributes, deep.map(lambda d: '{"x":' + d + "}"))}


@st.composite
def event_text(draw) -> str:  # noqa: ANN001
    """A valid event with one or two fields replaced by junk, sometimes one left out: junk that gets
    past the first checks and reaches the engine and the database."""
    fields = {"id": f'"e{draw(st.integers(0, 10 ** 6))}"', "lead": '"L"', "type": '"page_view"', "at": f'"{AT}"',
              "data": "{}"}
    for name in draw(st.sets(st.sampled_from(sorted(JUNK)), min_size=1, max_size=2)):
        fields[name] = draw(JUNK[name])
    if draw(st.integers(0, 9)) == 0:
        del fields[draw(st.sampled_from(sorted(fields)))]
    return "{" + ",".join(f'"{k}":{v}' for k, v in fields.items()) + "}"


anything = st.one_of(json_text, event_text(), deep)
counter = itertools.count()


def good_event(prefix: str) -> dict:
    return {"id": f"{prefix}-{next(counter)}", "lead": "G", "type": "page_view", "at": AT, "data": {"url": "/"}}


def test_the_webhook_answers_anything_and_never_loses_the_good_event(tmp_path, db_url):
    auth = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
    with Service(tmp_path, None, db=db_url) as svc:
        def post(body: bytes) -> dict | None:
            r = svc.http.post("/v1/events", content=body, headers=auth)
            assert r.status_code in (200, 400, 409, 413, 422), (r.status_code, r.text, body[:300])
            return r.json()

        def applied(good: dict) -> bool:
            return svc.service.store.stored_event(good["id"]) is not None

        @BUDGET
        @given(item=anything, raw=st.binary(max_size=300), batch=st.booleans())
        def check(item: str, raw: bytes, batch: bool) -> None:
            good = good_event("w")
            if batch:  # the good event in the same request, after the junk
                answer = post(("[" + item + "," + json.dumps(good) + "]").encode("utf-8", "surrogatepass"))
                assert answer["results"][-1] == {"id": good["id"], "status": "applied"}, answer
            else:
                answer = post(item.encode("utf-8", "surrogatepass"))  # alone (an array is a batch)
                statuses = [x["status"] for x in answer["results"]] if "results" in answer else [answer["status"]]
                assert set(statuses) <= {"applied", "duplicate", "rejected", "conflict"}, answer
                assert post(json.dumps(good).encode()) == {"id": good["id"], "status": "applied"}
            assert applied(good)
            post(raw)  # arbitrary bytes as a whole body
            after = good_event("w")
            assert post(json.dumps(after).encode()) == {"id": after["id"], "status": "applied"}

        check()
        assert svc.health()["ok"] is True


def test_ingest_answers_every_line_and_never_loses_the_good_ones(tmp_path, db_url):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(RULES)
    pipeline = Pipeline.open(db_url, str(rules))
    path = tmp_path / "in.jsonl"

    @BUDGET
    @given(lines=st.lists(st.one_of(anything.map(lambda t: t.encode("utf-8", "surrogatepass")), st.binary(max_size=200)),
                          max_size=6))
    def check(lines: list) -> None:
        first, last = good_event("i"), good_event("i")
        middle = len(lines) // 2
        body = [json.dumps(first).encode()] + lines[:middle] + [json.dumps(last).encode()] + lines[middle:]
        path.write_bytes(b"\n".join(body) + b"\n")
        counts = ingest_file(pipeline, str(path))
        answered = counts.applied + counts.duplicates + counts.rejected + counts.conflicts
        assert answered == len(list(read_jsonl(str(path))))  # every line got exactly one answer
        for good in (first, last):
            assert pipeline.store.stored_event(good["id"]) is not None, (good, counts.rejections)

    try:
        check()
    finally:
        pipeline.store.close()
