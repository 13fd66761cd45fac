"""The instances table on both backends: a heartbeat registers or refreshes one row per process, the
live list holds only instances seen lately, a clean stop removes its row and killed ones are pruned."""
from __future__ import annotations

from leadflow.service import Presence
from leadflow.store import Instance, Store


def test_beats_update_one_row_and_only_recent_instances_are_live(db_url):
    store = Store(db_url)
    try:
        store.beat_instance(Instance("h1:10:aa", "h1", 10, "serve", "v1", 1000.0, 1000.0))
        store.beat_instance(Instance("h2:20:bb", "h2", 20, "worker", "v1", 1005.0, 1005.0))
        # a later beat: new version and time; the start time stays the first one
        store.beat_instance(Instance("h1:10:aa", "h1", 10, "serve", "v2", 1050.0, 1050.0))
        assert store.count("instances") == 2
        assert store.live_instances(1060.0, 30.0) == [Instance("h1:10:aa", "h1", 10, "serve", "v2", 1000.0, 1050.0)]
        assert [i.id for i in store.live_instances(1060.0, 60.0)] == ["h1:10:aa", "h2:20:bb"]
        assert store.forget_instances(seen_before=1010.0) == 1  # the one not seen since 1005 (killed)
        store.forget_instance("h1:10:aa")  # a clean stop
        assert store.count("instances") == 0
    finally:
        store.close()


def test_presence_registers_beats_with_its_rules_version_and_leaves(db_url):
    store = Store(db_url)
    now = [500000.0]
    try:
        store.beat_instance(Instance("gone:1:cc", "gone", 1, "serve", "v0", 10.0, 10.0))  # killed a long time ago
        one, two = Presence(store, "serve", wall=lambda: now[0]), Presence(store, "worker", wall=lambda: now[0])
        one.register("v1")
        now[0] += 1
        two.register("v1")
        assert one.id != two.id and one.id.split(":")[1] == str(one.pid)
        assert [(i.role, i.rules_version) for i in one.live()] == [("serve", "v1"), ("worker", "v1")]
        assert store.count("instances") == 2  # the long-dead row was pruned on registering
        now[0] += 1
        one.beat("v2")  # a new version is written at once ...
        now[0] += 1
        two.beat("v1")  # ... an unchanged one waits for the beat interval
        assert {i.id: (i.rules_version, i.seen_at) for i in two.live()} == {one.id: ("v2", 500002.0),
                                                                              two.id: ("v1", 500001.0)}
        now[0] += 40  # the worker's loop stopped beating: it is no longer listed; the serve beat in time
        one.beat("v2")
        assert [i.id for i in one.live()] == [one.id]
        assert one.stop() and two.stop()
        assert store.count("instances") == 0
    finally:
        store.close()
