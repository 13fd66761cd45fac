"""The PNG dashboard through `leadflow stats --chart`: panels are drawn when they have data and left out
when they do not. The PNG is read here with zlib-free chunk parsing: its size and its Description
(a tEXt chunk listing the panels drawn), structure that can be checked, not pixels. On each backend
(db_url), since the panels are drawn from the store's reads."""
from __future__ import annotations

import struct
import time

from tests.leadflow_cli import leadflow
from tests.reports.funnel_history import DAY, Lead, realistic, write


def png(path) -> tuple[int, int, dict]:  # noqa: ANN001
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, text = 8, {}
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"tEXt":
            key, _, value = body.partition(b"\0")
            text[key.decode("latin-1")] = value.decode("latin-1")
        pos += 12 + length
    width, height = struct.unpack(">II", data[16:24])
    return width, height, text


def panels(path) -> list[str]:  # noqa: ANN001
    return png(path)[2]["Description"].removeprefix("panels: ").split("; ")


def test_crm_history_draws_funnel_trend_slices_and_owners(tmp_path, db_url):
    write(db_url, realistic(time.time() - 425 * DAY, n=1500))
    chart = tmp_path / "by.png"
    leadflow("--db", db_url, "stats", "--by", "source", "--chart", chart, check=True)
    assert panels(chart) == ["funnel", "trend", "by source", "won per owner"]  # no reps, no rejections: omitted
    assert png(chart)[:2] == (1300, 850)
    leadflow("--db", db_url, "stats", "--chart", chart, check=True)
    assert panels(chart) == ["funnel", "trend", "won per owner"]  # no --by: no slices
    assert png(chart)[:2] == (1300, 850)  # two rows, the fourth place left blank


def test_a_period_with_nothing_but_new_leads_draws_the_funnel_alone(tmp_path, db_url):
    t0 = time.time() - 10 * DAY
    write(db_url, [Lead(f"N{i}", None, {"source": "web"}, {"new": t0 + i * 3600}) for i in range(5)])
    chart = tmp_path / "one.png"
    leadflow("--db", db_url, "stats", "--chart", chart, check=True)
    assert panels(chart) == ["funnel"]
    width, height, _ = png(chart)
    assert (width, height) == (1300, 550)  # one panel, one row
