"""Delivery with several instances on one database: the dispatcher's claim (a conditional UPDATE on
the row's status and attempts, with a lease) holds on PostgreSQL under READ COMMITTED as on SQLite.
Two dispatchers (two stores, two connection pools, as two processes would have) race on the same
rows, each started together in its own thread: every row reaches the receiver once, and a row left
`sending` by a crashed holder whose lease ran out is resumed by exactly one of them.

Why it holds on PostgreSQL: both may read a row `pending` with the same `attempts`; the second
UPDATE waits for the first one's row lock, and once that commits, re-checks its WHERE on the row as
it is now (attempts went up), so it changes nothing and that dispatcher skips the row."""
from __future__ import annotations

import dataclasses
import time
from collections import Counter

from leadflow.core import Claimer
from leadflow.delivery import ChannelSender, ChannelSettings, Dispatcher
from leadflow.store import Store
from tests.concurrency import together

ROWS = 60


def test_two_dispatchers_racing_deliver_every_row_once(db_url, receiver):
    stores = [Store(db_url), Store(db_url)]
    dispatchers = [Dispatcher(s, [ChannelSender(ChannelSettings(webhook_url=receiver.url), s)]) for s in stores]
    try:
        with stores[0].transaction():
            for i in range(ROWS):
                stores[0].add_outbox(f"hook:{i}", "webhook", f"L{i:02d}", {"text": f"row {i}"})
            stores[0].add_outbox("hook:crashed", "webhook", "crashed", {"text": "left sending"})
        crashed = next(r for r in stores[0].outbox() if r["key"] == "hook:crashed")
        elsewhere = dataclasses.replace(Claimer.here(), machine="another-host|boot|ns")  # cannot be probed
        with stores[0].transaction():  # its holder died mid-delivery on another machine; the lease ran out
            assert stores[0].outbox_claim(crashed["id"], "pending", 0, elsewhere.to_text(), time.time() - 1)

        def work(i: int) -> int:
            delivered, deadline = 0, time.monotonic() + 120
            while time.monotonic() < deadline:
                delivered += dispatchers[i].run_once()
                if set(stores[i].outbox_counts()) == {"done"}:
                    break
            return delivered

        delivered = together([lambda: work(0), lambda: work(1)])
        got = Counter(receiver.leads())
        assert got == Counter([f"L{i:02d}" for i in range(ROWS)] + ["crashed"])  # each exactly once
        assert sum(delivered) == ROWS + 1
        assert stores[0].outbox_counts() == {"done": ROWS + 1}
        resumed = next(r for r in stores[0].outbox() if r["key"] == "hook:crashed")
        assert resumed["attempts"] == 2 and resumed["claimed_by"] != elsewhere.to_text()  # taken over once
    finally:
        for s in stores:
            s.close()
