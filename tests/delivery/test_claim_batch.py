"""The dispatcher claims due rows together (one durable transaction for up to CLAIM_BATCH rows) and
delivers them one by one; a claim that has used half its lease before a row's turn is renewed for
the rows still held, and a row another dispatcher took over meanwhile is left to it."""
from __future__ import annotations

import dataclasses

from leadflow.core import Claimer
from leadflow.delivery import Dispatcher
from leadflow.delivery._dispatcher import CLAIM_BATCH
from leadflow.store import Store


class Wall:
    """Wall-clock seconds that move only when a delivery says so."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclasses.dataclass
class Recorder:
    """A notifier for `note` rows: records each delivery with what the store showed at that moment."""
    store: Store
    wall: Wall
    took: float = 0.0  # wall seconds each delivery takes
    during: list = dataclasses.field(default_factory=list)  # callables run inside the first delivery
    seen: list = dataclasses.field(default_factory=list)
    kinds: tuple = ("note",)

    def deliver(self, kind: str, lead: str, payload: dict, key: str, resumed: bool, since: float = 0.0) -> dict:
        rows = {r["key"]: r for r in self.store.outbox()}
        self.seen.append((key, {k: (r["status"], r["lease_until"]) for k, r in rows.items()}))
        while self.during:
            self.during.pop(0)()
        self.wall.now += self.took
        return {"ok": True}


def add_rows(store: Store, n: int) -> None:
    with store.transaction():
        for i in range(n):
            store.add_outbox(f"note:{i}", "note", f"L{i}", {"text": f"row {i}"})


def test_due_rows_are_claimed_together_before_the_first_is_sent(store):
    wall = Wall()
    add_rows(store, CLAIM_BATCH + 3)
    notifier = Recorder(store, wall)
    assert Dispatcher(store, notifier, wall=wall).run_once() == CLAIM_BATCH + 3
    first_key, first_view = notifier.seen[0]
    assert first_key == "note:0"
    claimed = [k for k, (status, _) in first_view.items() if status == "sending"]
    assert len(claimed) == CLAIM_BATCH  # the whole first batch, not only the row being sent
    key, view = notifier.seen[CLAIM_BATCH]  # the first row of the second batch
    assert key == f"note:{CLAIM_BATCH}" and sum(s == "sending" for s, _ in view.values()) == 3
    assert [k for k, _ in notifier.seen] == [f"note:{i}" for i in range(CLAIM_BATCH + 3)]  # in order, once
    assert store.outbox_counts() == {"done": CLAIM_BATCH + 3}


def test_a_slow_batch_renews_its_lease_and_leaves_a_row_taken_over(store):
    wall = Wall()
    add_rows(store, 4)
    notifier = Recorder(store, wall, took=60.0)
    dispatcher = Dispatcher(store, notifier, wall=wall, lease=100.0)
    other = dataclasses.replace(Claimer.here(), token="another-dispatcher").to_text()

    def take_over_row_2() -> None:  # another dispatcher found its lease over (as it would be at 120 s)
        row = next(r for r in store.outbox() if r["key"] == "note:2")
        with store.transaction():
            assert store.outbox_claim(row["id"], "sending", row["attempts"], other, wall.now + 500)

    notifier.during.append(take_over_row_2)
    assert dispatcher.run_once() == 3
    assert [k for k, _ in notifier.seen] == ["note:0", "note:1", "note:3"]  # note:2 is the other's now
    # before note:1 (wall +60, past half of the 100 s lease) the rows still held got a new lease
    _, view = notifier.seen[1]
    assert view["note:1"] == ("sending", wall.now - 120 + 100) and view["note:3"] == view["note:1"]
    assert view["note:2"][1] == wall.now - 180 + 500  # the other holder's lease was left alone
    statuses = {r["key"]: (r["status"], r["claimed_by"]) for r in store.outbox()}
    assert statuses["note:2"] == ("sending", other)
    assert {statuses[k][0] for k in ("note:0", "note:1", "note:3")} == {"done"}


def test_a_fast_batch_is_not_renewed(store):
    wall = Wall()
    add_rows(store, 3)
    notifier = Recorder(store, wall, took=10.0)
    Dispatcher(store, notifier, wall=wall, lease=100.0).run_once()
    leases = {view[key][1] for key, view in notifier.seen}
    assert leases == {1_000_100.0}  # every row sent under the first claim's lease
