"""Running work as several instances would, at the same moment: one thread per call, all released
together from a barrier. The races between two stores, schedulers, desks or dispatchers use it."""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any


def together(calls: Sequence[Callable[[], Any]], timeout: float = 180) -> list:
    """Each call in a thread of its own, started together; their results, in order, once every thread
    has ended. An exception raised by any call is raised here, on the test's thread."""
    start = threading.Barrier(len(calls))
    results: list = [None] * len(calls)
    errors: list[BaseException] = []

    def run(i: int, call: Callable[[], Any]) -> None:
        try:
            start.wait(30)  # a thread that failed before it breaks the barrier, never hangs the others
            results[i] = call()
        except BaseException as exc:  # noqa: BLE001 - raised below, after join
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "a racing call did not finish"
    if errors:
        raise errors[0]
    return results


def held(writer: Any) -> threading.Event:
    """Keep a group commit `writer` busy on a group of its own until the returned event is set, so
    that what is submitted next forms the following group, all of it."""
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        entered.set()
        assert release.wait(30)

    writer.submit(hold)
    assert entered.wait(30)
    return release
