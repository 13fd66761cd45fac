"""Fixtures shared by several test modules: servers on loopback (see tests/servers.py)."""
from __future__ import annotations

import pytest

from tests.servers import Mailbox, Receiver, running_smtp


@pytest.fixture
def smtp():
    with running_smtp(Mailbox()) as box:
        yield box


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()
