"""Rule files several test modules feed to leadflow."""
from __future__ import annotations

import textwrap

# A "billion laughs": nine levels of nine aliases each, 354 bytes that expand to 387 million nodes.
BILLION_LAUGHS = textwrap.dedent("""\
    leadflow: 1
    a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]
    b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
    c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
    d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
    e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
    f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
    g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
    h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
    i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
    """)

# A small desk: a VP who asks for a demo goes new -> mql -> sql on the demo (20 + 40 points) and to
# alice; the `need` criterion holds once a demo was asked for (CRM webhooks and export tests).
DESK_RULES = """\
    leadflow: 1
    events: { demo_requested: demo form, page_view: a page view }
    scoring:
      fit:
        - { id: senior, when: { title: { matches: "(?i)\\\\bvp\\\\b" } }, points: 20 }
      engagement:
        - { id: demo, on: demo_requested, points: 40, repeat: once }
    bant:
      need: { when: { event: demo_requested } }
    stages:
      mql: { when: { score: { at_least: 50 } } }
      sql: { when: { all: [ { score: { at_least: 55 } }, { event: demo_requested } ] } }
    reps:
      - { id: alice, name: Alice, email: alice@acme.example }
    routing:
      - { pool: [alice] }
    fallback: { channel: "#queue" }
    feedback:
      reject_reasons:
        - { id: no_budget, label: "No budget" }
    """
