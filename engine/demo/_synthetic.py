"""Generated leads and events for the demo and the benchmark.

Personas are chosen so that together they exercise every bundled rule: buyers who reach SQL, managers
who stay MQL, students, job seekers, competitors, opt-outs, leads whose interest fades and who are
demoted. Traffic comes in visits (bursts of about five events) interleaved across leads at random.
"""
from __future__ import annotations

import random
from typing import Iterator

from leadflow.core import format_time, parse_time

START = parse_time("2026-09-01T08:00:00Z")
DAY = 86400.0

COMPANIES = ["acme", "globex", "initech", "umbrella", "hooli", "vandelay", "stark", "wayne", "tyrell", "cyberdyne"]
FIRST = ["ann", "raj", "mia", "leo", "sara", "tom", "ines", "kofi", "yuki", "omar", "lena", "paul"]

PERSONAS = {
    # name: (weight, attributes factory, visit plan)
    "buyer": 3, "evaluator": 4, "manager": 4, "student": 2, "job_seeker": 2, "competitor": 1,
    "opt_out": 1, "faded": 2, "cold": 4,
}


def _attrs(rng: random.Random, persona: str, n: int) -> dict:
    company = rng.choice(COMPANIES)
    name = rng.choice(FIRST)
    base = {"name": f"{name.title()} {company.title()}", "company": company.title(),
            "email": f"{name}.{n}@{company}.example", "country": rng.choice(["US", "CA", "GB", "DE", "FR", "IN"])}
    if persona in ("buyer", "evaluator", "faded"):
        base.update(title=rng.choice(["VP Sales", "Director of Marketing", "Head of Growth", "CTO"]),
                    employees=rng.choice([120, 300, 800, 2500]), industry=rng.choice(["saas", "fintech", "ecommerce"]))
        if persona == "buyer":
            base.update(budget=rng.choice([15000, 40000, 90000]), pain="spreadsheets do not scale",
                        timeline_days=rng.choice([30, 60, 90]))
    elif persona == "manager":
        base.update(title="Marketing Manager", employees=rng.choice([60, 150, 400]), industry="software")
    elif persona == "student":
        base.update(title="Student", email=f"{name}{n}@gmail.com", employees=1)
    elif persona == "job_seeker":
        base.update(title="Account Executive", employees=rng.choice([20, 40]))
    elif persona == "competitor":
        base.update(title="Product Manager", email=f"{name}.{n}@rival.example", employees=500)
    elif persona == "opt_out":
        base.update(title="Director of IT", employees=900, do_not_contact=True)
    else:  # cold
        base.update(title=rng.choice(["Analyst", "Consultant", "Engineer"]), employees=rng.choice([5, 10, 30]),
                    email=f"{name}{n}@{rng.choice(['gmail', 'yahoo', 'outlook'])}.com")
    return base


def _visits(rng: random.Random, persona: str) -> list[list[tuple[str, dict]]]:
    pricing = ("page_view", {"url": "https://app.example/pricing"})
    docs = ("page_view", {"url": "https://app.example/docs/api"})
    home = ("page_view", {"url": "https://app.example/"})
    careers = ("page_view", {"url": "https://app.example/careers"})
    plan = {
        "buyer": [[home, pricing, docs, ("content_download", {"asset": "roi-guide"})],
                  [pricing, ("webinar_attended", {"webinar": "q4-launch"}), docs],
                  [pricing, ("demo_requested", {"form": "contact-sales"}), ("pricing_inquiry", {})]],
        "evaluator": [[home, docs, docs, ("content_download", {"asset": "case-study"})],
                      [pricing, docs, ("email_clicked", {"campaign": "nurture-1"}), ("webinar_attended", {})],
                      [pricing, pricing, ("demo_requested", {})]],
        "manager": [[home, ("content_download", {"asset": "checklist"}), docs],
                    [("email_clicked", {}), pricing, ("webinar_attended", {})]],
        "student": [[home, docs, careers], [("content_download", {"asset": "ebook"})]],
        "job_seeker": [[home, careers, careers], [("email_bounced", {})]],
        "competitor": [[home, pricing, docs, pricing]],
        "opt_out": [[home, pricing, ("demo_requested", {})]],
        "faded": [[home, pricing, ("webinar_attended", {}), ("content_download", {"asset": "roi-guide"}), docs],
                  [("email_clicked", {}), ("email_unsubscribed", {})]],
        "cold": [[home], [("email_clicked", {})]],
    }
    return plan[persona]


def demo_leads(n: int, seed: int) -> list[tuple[str, str, list[dict]]]:
    """(lead id, persona, events in time order) for n leads."""
    rng = random.Random(seed)
    names = list(PERSONAS)
    weights = [PERSONAS[p] for p in names]
    leads = []
    for i in range(n):
        persona = names[i] if i < len(names) else rng.choices(names, weights)[0]
        lead = f"lead-{i + 1:04d}"
        t = START + rng.uniform(0, 20) * DAY
        events = [_event(f"{lead}-e0", lead, "lead_updated", t, _attrs(rng, persona, i + 1))]
        for v, visit in enumerate(_visits(rng, persona)):
            t += (rng.uniform(1, 6) if v else 0.01) * DAY
            if persona == "faded" and v == 1:
                t += 120 * DAY  # interest fades for four months before the next visit
            for j, (etype, data) in enumerate(visit):
                t += rng.uniform(30, 600)
                events.append(_event(f"{lead}-e{len(events)}", lead, etype, t, data))
        leads.append((lead, persona, events))
    return leads


def _event(eid: str, lead: str, etype: str, t: float, data: dict) -> dict:
    return {"id": eid, "lead": lead, "type": etype, "at": format_time(t), "data": dict(data)}


def bench_events(n_leads: int, per_lead: int, seed: int, active: int = 2000) -> Iterator[dict]:
    """A stream of n_leads * per_lead events: visits of ~5 events, interleaved across active leads."""
    rng = random.Random(seed)
    names = list(PERSONAS)
    weights = [PERSONAS[p] for p in names]
    pool: list[list] = []  # [lead, persona, emitted, t, attrs]
    next_lead = 0

    def refill() -> None:
        nonlocal next_lead
        while len(pool) < active and next_lead < n_leads:
            next_lead += 1
            persona = rng.choices(names, weights)[0]
            pool.append([f"b{next_lead}", persona, 0, START + rng.uniform(0, 60) * DAY,
                         _attrs(rng, persona, next_lead)])

    refill()
    pages = ["/", "/pricing", "/docs/api", "/blog/post", "/careers", "/pricing"]
    kinds = ["page_view"] * 6 + ["content_download", "email_clicked", "webinar_attended", "demo_requested",
                                 "pricing_inquiry", "email_bounced"]
    while pool:
        k = rng.randrange(len(pool))
        lead = pool[k]
        burst = min(per_lead - lead[2], max(1, int(rng.gauss(5, 1.5))))
        lead[3] += rng.uniform(0.5, 5) * DAY
        for _ in range(burst):
            lead[3] += rng.uniform(20, 400)
            n = lead[2]
            if n == 0:
                etype, data = "lead_updated", lead[4]
            else:
                etype = rng.choice(kinds)
                data = {"url": "https://app.example" + rng.choice(pages)} if etype == "page_view" else {}
            yield _event(f"{lead[0]}-{n}", lead[0], etype, lead[3], data)
            lead[2] += 1
        if lead[2] >= per_lead:
            pool[k] = pool[-1]
            pool.pop()
            refill()
